"""Saving a camera's lines and zones from the set-up page back into the config file.

The file is edited, not regenerated: tomlkit keeps every comment, blank line and
key order an installer wrote, and only ``lines`` and ``zones`` of the one camera
change. The new text is written beside the file, checked with the same validation
``lokaalmeten check-config`` runs (the caller passes it), and only then moved over
the file (``os.replace``: a reader sees the old file or the new one, never half).
A rejected edit leaves the file untouched and raises :class:`ConfigError` naming
the file, the key and the reason.

Why the config file and not a file of its own: the agent has one configuration
file and ``check-config`` reads it as a whole; an included file would be a second
place where lines live.

Under the systemd unit the agent cannot write ``/etc/lokaalmeten`` (``ProtectSystem``),
and should not: a daemon that rewrites its own configuration could change anything in
it. So there it *proposes* (:func:`propose`): the geometry alone, checked against the
current file, goes to a small JSON file in its state directory, and
``lokaalmeten apply-setup``, run as root by ``lokaalmeten-setup.path`` when that file
appears, writes it into the configuration (:func:`apply_proposal`: only that camera's
lines and zones can change, whatever the file says) and reloads the agent.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable
from pathlib import Path

import tomlkit
from pydantic import BaseModel, ConfigDict, ValidationError
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from agent.config.camera import LineConfig, ZoneConfig
from agent.config.errors import problems_from
from agent.errors import ConfigError

PROPOSAL_FILE = "setup-proposal.json"
"""In the agent's state directory (beside the outbox): what ``lokaalmeten-setup.path`` watches."""


class Geometry(BaseModel):
    """One camera's lines and zones: all that set-up can change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: str
    lines: list[LineConfig]
    zones: list[ZoneConfig]


class ReadOnlyConfig(ConfigError):
    """The configuration's directory cannot be written (the systemd unit): propose instead."""


def write_geometry(path: Path, geometry: Geometry, validate: Callable[[Path], object]) -> None:
    """Replace the camera's lines and zones in ``path``, checked before written."""
    candidate = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        _checked(path, geometry, validate, candidate)
        os.replace(candidate, path)
    except OSError as exc:
        problem = [("", f"cannot write: {exc.strerror or exc}")]
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise ReadOnlyConfig(str(path), problem) from exc
        raise ConfigError(str(path), problem) from exc
    finally:
        with contextlib.suppress(OSError):  # never created (EROFS says so too): nothing to do
            candidate.unlink()
    _sync_directory(path.parent)


def propose(proposal: Path, config: Path, geometry: Geometry,
            validate: Callable[[Path], object]) -> None:
    """Check ``geometry`` against ``config`` (in the proposal's directory) and leave it
    in ``proposal`` for ``apply-setup``; a rejected geometry proposes nothing."""
    candidate = proposal.with_name(f".{proposal.name}.{os.getpid()}.toml")
    staged = proposal.with_name(f".{proposal.name}.{os.getpid()}.new")
    try:
        _checked(config, geometry, validate, candidate)
        _write(staged, geometry.model_dump_json(exclude_none=True), 0o640)
        os.replace(staged, proposal)
    except OSError as exc:
        raise ConfigError(str(proposal), [("", f"cannot write: {exc.strerror or exc}")]) from exc
    finally:
        for leftover in (candidate, staged):
            with contextlib.suppress(OSError):
                leftover.unlink()
    _sync_directory(proposal.parent)


def apply_proposal(proposal: Path, config: Path, validate: Callable[[Path], object]) -> bool:
    """Write a proposed geometry into ``config`` and remove the proposal; False if there
    was none. A proposal that does not parse or that the validation refuses is removed
    too (the page's next Save proposes again) and raises :class:`ConfigError`."""
    try:
        text = proposal.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(proposal), [("", f"cannot read: {exc}")]) from exc
    try:
        geometry = Geometry.model_validate_json(text)
        write_geometry(config, geometry, validate)
    except ValidationError as exc:
        raise ConfigError(str(proposal), problems_from(exc)) from None
    finally:
        proposal.unlink(missing_ok=True)
    return True


def _checked(config: Path, geometry: Geometry, validate: Callable[[Path], object],
             candidate: Path) -> None:
    """Write ``config`` with ``geometry`` applied to ``candidate`` and validate it there."""
    try:
        document = tomlkit.parse(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(str(config), [("", f"cannot read: {exc}")]) from exc
    cameras = document.get("cameras")
    camera = cameras.get(geometry.camera) if isinstance(cameras, Table) else None
    if not isinstance(camera, Table):
        raise ConfigError(str(config), [(f"cameras.{geometry.camera}",
                                         "no such camera section")])
    _set(camera, "lines", [x.model_dump(exclude_none=True) for x in geometry.lines])
    _set(camera, "zones", [{**z.model_dump(exclude_none=True),
                            "polygon": [list(p) for p in z.polygon]} for z in geometry.zones])
    _write(candidate, tomlkit.dumps(document), os.stat(config).st_mode & 0o777)
    try:
        validate(candidate)
    except ConfigError as exc:
        raise ConfigError(str(config), exc.problems) from None


def _set(camera: Table, key: str, tables: list[dict[str, object]]) -> None:
    if not tables:
        camera.pop(key, None)
        return
    aot = AoT([])
    for entry in tables:
        table = tomlkit.table()
        table.update(entry)
        table.add(tomlkit.nl())  # a blank line before whatever table follows
        aot.append(table)
    camera[key] = aot


def _write(path: Path, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
