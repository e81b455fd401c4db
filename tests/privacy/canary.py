"""A canary painted into video frames, and a search for it in everything the box leaves behind.

The canary is a band of eight vertical stripes, each 48 px wide and flat, in
colours no street scene shows in exactly that order. A flat stripe survives
shrinking (a thumbnail of it is the same colour), so a leak of the full frame,
of a crop or of a shrunken copy all carry runs of identical canary pixels.
The search looks for such a run of every stripe colour (BGR, RGB and the grey
level OpenCV computes) as raw bytes, as hex (either case) and as base64 (all
three alignments), and for the stripe colours written out as decimal numbers
in sequence, which is how pixel values disguised as measurements would look.

The clip is written losslessly (FFV1), so the frames the counter decodes hold
the exact canary bytes.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

STRIPES_BGR: tuple[tuple[int, int, int], ...] = (
    (13, 251, 177), (201, 157, 149), (189, 163, 211), (241, 147, 197),
    (129, 197, 233), (157, 211, 161), (205, 139, 181), (223, 171, 203),
)
"""Distinct colours whose grey levels (159-202) are all above 127, so a run of them is never
ASCII text, and none is 0xAA, 0xBB, ... whose hex is one repeated digit (grey levels 98 and
170 once matched a test's boot id "bbbb..." and the hex of "aaaa...")."""
STRIPE_PX = 48
BAND = (8, 72)
"""Rows the band covers (top of the frame, above the people in vtest.avi)."""
RUN = 4
"""Identical pixels in a row that make a hit."""


def paint(frame: np.ndarray) -> np.ndarray:
    """A copy of the frame with the canary band painted across its top."""
    out = frame.copy()
    for k, colour in enumerate(STRIPES_BGR):
        out[BAND[0]:BAND[1], k * STRIPE_PX:(k + 1) * STRIPE_PX] = colour
    return out


def write_canary_clip(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """A lossless clip of the frames with the canary painted in."""
    frames = [paint(f) for f in frames]
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write FFV1 here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _grey(bgr: tuple[int, int, int]) -> int:
    pixel = np.array([[bgr]], dtype=np.uint8)
    return int(cv2.cvtColor(pixel, cv2.COLOR_BGR2GRAY)[0, 0])


@dataclass(frozen=True, slots=True)
class Needle:
    form: str
    pattern: bytes


def needles() -> list[Needle]:
    """Every form in which a run of canary pixels would show up in a leak."""
    out: list[Needle] = []
    for bgr in STRIPES_BGR:
        runs = {"bgr": bytes(bgr) * RUN, "rgb": bytes(bgr[::-1]) * RUN,
                "grey": bytes([_grey(bgr)]) * (RUN * 3)}
        for name, raw in runs.items():
            out.append(Needle(f"raw {name}", raw))
            out.append(Needle(f"hex {name}", raw.hex().encode()))
            out.append(Needle(f"HEX {name}", raw.hex().upper().encode()))
            for shift in range(3):  # base64 of the run at each byte alignment
                encoded = base64.b64encode(b"\0" * shift + raw * 2)
                out.append(Needle(f"base64 {name}", encoded[4 + 4:-8]))
    for first, second in itertools.pairwise(STRIPES_BGR):
        numbers = rb"(?:\.0+)?\D{1,3}".join(str(v).encode() for v in (*first, *second))
        out.append(Needle("decimal numbers", numbers))
    return out


_NEEDLES = needles()


def find_in(data: bytes) -> list[str]:
    """The forms of the canary found in these bytes (empty: none)."""
    hits = []
    for needle in _NEEDLES:
        if needle.form == "decimal numbers":
            if re.search(needle.pattern, data):
                hits.append(needle.form)
        elif needle.pattern in data:
            hits.append(needle.form)
    return sorted(set(hits))


def files_under(*roots: Path, newer_than: float = 0.0) -> Iterator[Path]:
    """Regular files below the roots modified after ``newer_than`` (epoch s)."""
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            try:
                if path.is_file() and not path.is_symlink() \
                        and path.stat().st_mtime >= newer_than:
                    yield path
            except OSError:
                continue


def search_files(paths: Iterable[Path], limit_bytes: int = 256 << 20) -> dict[str, list[str]]:
    """File → canary forms found in it, for every file that holds the canary."""
    found: dict[str, list[str]] = {}
    for path in paths:
        try:
            with path.open("rb") as stream:
                data = stream.read(limit_bytes)
        except OSError:
            continue
        hits = find_in(data)
        if hits:
            found[str(path)] = hits
    return found
