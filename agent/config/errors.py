"""Turn pydantic's validation errors into (key path, reason) pairs a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def key_path(location: tuple[int | str, ...], prefix: str = "") -> str:
    """``("sensors", "pm", "port")`` → ``sensors.pm.port``; list indexes as ``[0]``."""
    text = prefix
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def problems_from(exc: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    """One (key, reason) per error, skipping pydantic's union-branch noise."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        location = tuple(part for part in error["loc"] if not _is_union_tag(part))
        reason = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = "unknown key (check the spelling; see docs/configuration.md)"
        problems.append((key_path(location, prefix), reason))
    return problems


def _is_union_tag(part: int | str) -> bool:
    """pydantic inserts function-wrapper names like ``function-after[...]`` into locations."""
    return isinstance(part, str) and ("[" in part and part.endswith("]"))
