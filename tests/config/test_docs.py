"""docs/configuration.md cannot drift from the config models.

Every pydantic model a config file reaches (AgentConfig and everything under it) and
every driver's options model must have a table in docs/configuration.md: under a
heading naming its section (``[mqtt.tls]``, ``[sensors.<id>.humidity]``; a driver's as
``[sensors.<id>.options]`` plus the model names), one row per field with the model's
default, and no row for a field that does not exist. A failure names each missing
section, key or default that differs.

How defaults are compared: a required field's cell starts with "—"; a ``None`` default
is "none", "—" or words (``profile``, ``every enabled sensor``), never a value; a
number, bool or string must read the same (``2 000 000`` = 2000000, ``true`` =
``True``); other defaults (an empty list, a nested section) are "[]", "none" or words.
A row may list several keys and as many defaults, comma-separated.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from agent.config import AgentConfig
from agent.sensors import registry

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"
OPTIONS = "sensors.<>.options"


@dataclass(frozen=True)
class Section:
    """A model and where it sits in a config file; ``models`` names the drivers of an
    options model (empty for the rest)."""

    path: str
    model: type[BaseModel]
    models: tuple[str, ...] = ()

    def title(self) -> str:
        where = f"[{self.path}]" if self.path else "top level"
        return f"{where} ({', '.join(self.models)})" if self.models else where


def nested_models(annotation: object) -> Iterator[tuple[type[BaseModel], str]]:
    """Models inside a field's type, with the path step a dict adds (``.<>``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, ""
        return
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict:
        for model, step in nested_models(args[1]):
            yield model, ".<>" + step
        return
    if origin in (list, tuple, typing.Union, types.UnionType, typing.Annotated):
        for arg in args:
            if arg is not Ellipsis:
                yield from nested_models(arg)


def sections_under(model: type[BaseModel], path: str,
                   models: tuple[str, ...] = ()) -> Iterator[Section]:
    yield Section(path, model, models)
    for name, field in model.model_fields.items():
        for sub, step in nested_models(field.annotation):
            yield from sections_under(sub, f"{path}.{name}{step}".lstrip("."), models)


def is_section(field: FieldInfo) -> bool:
    """A field holding models (``[mqtt.tls]``, ``[sensors.<id>]``), not a value."""
    return any(True for _ in nested_models(field.annotation))


def all_sections() -> list[Section]:
    """AgentConfig's tree, then each driver options model (once, with every model using it)."""
    sections = list(sections_under(AgentConfig, ""))
    by_type: dict[type[BaseModel], list[str]] = {}
    for model, spec in sorted(registry().items()):
        by_type.setdefault(spec.options_type, []).append(model)
    for options_type, models in by_type.items():
        sections += sections_under(options_type, OPTIONS, tuple(models))
    return sections


# --- the document ---------------------------------------------------------------------

def normalise(token: str) -> str:
    """``[[sensors.<id>.options.registers]]`` → ``sensors.<>.options.registers``."""
    return re.sub(r"<[^>]*>", "<>", token.strip("[]"))


@dataclass
class DocTable:
    heading: str
    tokens: set[str]
    rows: dict[str, str]
    """key → its default cell."""


def tables(text: str) -> list[DocTable]:
    """Each heading with the key/default cells of the table rows below it."""
    found: list[DocTable] = []
    for line in text.splitlines():
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
            found.append(DocTable(heading, {normalise(t) for t in
                                            re.findall(r"`([^`]+)`", heading)}, {}))
        elif line.startswith("|") and found and not re.match(r"\|\s*(key|-)", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) >= 2:
                keys = re.findall(r"`([a-z_0-9]+)", cells[0])
                defaults = split_defaults(cells[1], len(keys))
                found[-1].rows.update(zip(keys, defaults, strict=True))
    return found


def split_defaults(cell: str, count: int) -> list[str]:
    parts = [p.strip() for p in cell.split(",")]
    return parts if len(parts) == count else [cell] * count


def table_for(section: Section, docs: list[DocTable]) -> DocTable | None:
    if section.path == "":
        return next((t for t in docs if t.heading.lower() == "top level"), None)
    for table in docs:
        if section.path in table.tokens and set(section.models) <= table.tokens:
            return table
    return None


# --- defaults -------------------------------------------------------------------------

NUMBER = re.compile(r"^-?\d[\d  ]*(\.(?P<decimals>\d+))?$")
WORDS_FOR_EMPTY = {"none", "[]", "{}", "()"}


def literal(cell: str) -> object:
    """The value a default cell states, or None when it states words."""
    text = cell.strip("`\"' ")
    if re.fullmatch(r"0x[0-9A-Fa-f]+", text):
        return float(int(text, 16))
    if NUMBER.match(text):
        return float(text.replace(" ", "").replace(" ", ""))
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if cell.startswith(("`", '"')) and not re.search(r"[<…]", text):
        return text
    return None


def rounding(number: str) -> float:
    """Half the last shown digit: 123.01 states 123.0103 (0 for integers and hex)."""
    match = NUMBER.match(number)
    decimals = match["decimals"] if match else None
    return 0.5 * 10 ** -len(decimals) if decimals else 0.0


def default_problem(field: FieldInfo, cell: str) -> str | None:
    """Why the cell does not state the field's default (None: it does)."""
    if field.is_required():
        return None if cell.startswith("—") else "required, but the docs give a default"
    default = field.get_default(call_default_factory=True)
    return None if states(default, cell) else f"default {default!r}, but the docs state {cell!r}"


def states(default: object, cell: str) -> bool:
    """Whether a default cell says ``default``."""
    words = cell.strip("`\"' ")
    stated = literal(cell)
    if default is None or isinstance(default, (BaseModel, dict, list, tuple, frozenset)):
        empty = default is None or not default
        return (stated is None and (empty or not cell.startswith("—"))) or \
            words.lower() in WORDS_FOR_EMPTY
    if cell.startswith("—"):
        return False
    if isinstance(default, bool):
        return stated is default
    if isinstance(default, (int, float)):
        return isinstance(stated, float) and abs(stated - default) <= rounding(words)
    return words == str(default)


def drift(text: str) -> list[str]:
    """Every disagreement between the models and the document."""
    docs = tables(text)
    problems: list[str] = []
    for section in all_sections():
        if all(is_section(f) for f in section.model.model_fields.values()):
            continue  # [sinks]: nothing but sections, each checked on its own
        table = table_for(section, docs)
        if table is None:
            problems.append(f"{section.title()}: no table under a heading naming it")
            continue
        fields = section.model.model_fields
        for name, field in fields.items():
            if name not in table.rows and is_section(field):
                continue  # documented by its own table, which is checked in its turn
            if name not in table.rows:
                problems.append(f"{section.title()}: key {name} missing")
                continue
            why = default_problem(field, table.rows[name])
            if why:
                problems.append(f"{section.title()}: {name}: {why}")
        problems += [f"{section.title()}: documents {key}, which is no key of it"
                     for key in table.rows if key not in fields]
    return problems


def test_configuration_md_matches_the_models() -> None:
    problems = drift(DOC.read_text(encoding="utf-8"))
    assert not problems, "docs/configuration.md has drifted:\n" + "\n".join(problems)


def test_the_walk_reaches_nested_and_driver_sections() -> None:
    """The guard is only as good as its walk: it must see the deep ones too."""
    paths = {s.title() for s in all_sections()}
    assert {"[mqtt.tls]", "[sensors.<>.humidity]", "[cameras.<>.lines]",
            "[sensors.<>.options] (sds011)", "[sensors.<>.options.registers] (modbus)",
            "[sensors.<>.options] (sen50, sen54, sen55)"} <= paths
