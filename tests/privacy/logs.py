"""What a log line may not look like: image data in any of the forms a careless change uses."""

from __future__ import annotations

import re

MAX_LINE = 600
"""Longer log lines are suspect: a 160×120 grey thumbnail is 19 200 bytes."""

_SUSPECT = (
    (re.compile(r"array\(\[|dtype=uint8|\[\[\[|\[\[ *\d+ +\d+ +\d+"), "a numpy array's repr"),
    (re.compile(r"[A-Za-z0-9+/]{120,}={0,2}"), "a long base64 run"),
    (re.compile(r"(?:[0-9a-fA-F]{2}){64,}"), "a long hex run"),
    (re.compile(r"(?:\\x[0-9a-f]{2}){16,}"), "escaped binary bytes"),
    (re.compile(r"(?:\b\d{1,3}\s*,\s*){48,}"), "a long run of small numbers"),
)


def suspicious_lines(text: str) -> list[str]:
    """Log lines that are too long or carry something shaped like pixel data."""
    found = []
    for line in text.splitlines():
        if len(line) > MAX_LINE:
            found.append(f"{len(line)}-character line: {line[:100]}...")
            continue
        for pattern, what in _SUSPECT:
            if pattern.search(line):
                found.append(f"{what}: {line[:160]}")
                break
    return found
