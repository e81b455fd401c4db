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
place where lines live. The directory must be writable by whoever saves (a
stand-alone ``lokaalmeten run``; for the systemd unit see docs/camera-setup.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Table

from agent.config.camera import LineConfig, ZoneConfig
from agent.errors import ConfigError


def write_geometry(path: Path, camera_id: str, lines: Sequence[LineConfig],
                   zones: Sequence[ZoneConfig], validate: Callable[[Path], object]) -> None:
    """Replace camera ``camera_id``'s lines and zones in ``path``, checked before written."""
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(str(path), [("", f"cannot read: {exc}")]) from exc
    cameras = document.get("cameras")
    camera = cameras.get(camera_id) if isinstance(cameras, Table) else None
    if not isinstance(camera, Table):
        raise ConfigError(str(path), [(f"cameras.{camera_id}", "no such camera section")])
    _set(camera, "lines", [x.model_dump(exclude_none=True) for x in lines])
    _set(camera, "zones", [{**z.model_dump(exclude_none=True),
                            "polygon": [list(p) for p in z.polygon]} for z in zones])
    candidate = path.with_name(f".{path.name}.{os.getpid()}.new")
    try:
        _write(candidate, tomlkit.dumps(document), os.stat(path).st_mode & 0o777)
        try:
            validate(candidate)
        except ConfigError as exc:
            raise ConfigError(str(path), exc.problems) from None
        os.replace(candidate, path)
    except OSError as exc:
        raise ConfigError(str(path), [("", f"cannot write: {exc.strerror or exc}")]) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
    _sync_directory(path.parent)


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
