"""InfluxDB line protocol (pure): ``measurement,tag=v field=1.5,n=3i,s="x" 1780000000000``.

The escaping rules, from InfluxDB's line protocol reference (1.x and 2.x agree):

* measurement: comma and space are escaped with a backslash;
* tag keys, tag values, field keys: comma, equals sign and space;
* string field values: double quote and backslash (and the value is quoted);
* a newline ends a line and has no escape anywhere: it is refused here;
* a backslash before anything else is literal, so a name ending in a backslash would
  escape the separator after it: refused here too (``agent.config.influxdb.name_problem``
  keeps such names out of the config; this module raises rather than write a line
  the server would misread).

Floats are written so they read back as the same float (``repr``) and never as an
integer, so a field's type is fixed by its first write; integers carry ``i``.
Written by hand rather than taken from a client library: the rules above are the
whole of it, and the official clients bring HTTP stacks the box has no use for.
The tests write odd names to a real InfluxDB and read them back.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from agent.config.influxdb import name_problem

FieldValue = float | int | bool | str

_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ "})
_KEY = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_STRING = str.maketrans({'"': r"\"", "\\": "\\\\"})


def line(measurement: str, tags: Iterable[tuple[str, str]],
         fields: Iterable[tuple[str, FieldValue]], timestamp: int) -> str:
    """One point; tags are sorted (InfluxDB's advice: it saves the server the sort)."""
    head = _checked(measurement).translate(_MEASUREMENT)
    tag_text = "".join(f",{_checked(k).translate(_KEY)}={_checked(v).translate(_KEY)}"
                       for k, v in sorted(tags))
    field_text = ",".join(f"{_checked(k).translate(_KEY)}={_value(v)}" for k, v in fields)
    if not field_text:
        raise ValueError("a point needs at least one field")
    return f"{head}{tag_text} {field_text} {timestamp}"


def _checked(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(f"{name!r}: {problem}")
    return name


def _value(value: FieldValue) -> str:
    if isinstance(value, bool):  # before int: bool is an int
        return "true" if value else "false"
    if isinstance(value, int):
        return f"{value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"line protocol has no {value}")
        return repr(value)
    if "\n" in value:
        raise ValueError("a string field must not contain a line break")
    return f'"{value.translate(_STRING)}"'
