"""How many frames per second the counter can analyse on this CPU, measured as it runs.

A Pi 4 analyses about 3 frames/s with the bundled model, a Pi 5 perhaps 8-10,
this 2-core x86 host 50: one ``fps_cap`` cannot suit them all. Too high a cap on
a slow box makes the source hand over frames faster than the detector takes
them; the single frame slot then replaces them (``frames_dropped_total``
climbs as if something were wrong), every replaced frame was shrunk for
nothing, and the frames analysed are spaced unevenly, which the tracker's
motion model likes least. Too low a cap wastes a fast box.

So the counter measures the time it spends on each frame (detector, tracker,
counting: wall time, so a CPU shared with the rest of the daemon counts too)
and asks the source for ``share / mean time`` frames per second, at most
``fps_cap``. With ``share`` below 1 the detector finishes a frame before the
next is due: frames are then *skipped* by design at the source, evenly, and
*dropped* only when the time per frame jumps (a crowd arrives) until the
estimate catches up. The rate is reported with every interval, so a fleet
operator sees what each box manages.
"""

from __future__ import annotations

import math

SHARE = 0.85
"""Fraction of the time the counter may spend analysing: the rest absorbs frame-to-frame
variation, so a frame is seldom due while the previous one is still in the detector."""
SMOOTHING = 0.1
"""Weight of the newest frame's time in the running mean: about the last 10 frames count."""
MIN_FPS = 0.2
"""Never ask for fewer frames than this, whatever one slow frame suggests."""


class AnalysisPace:
    """A running mean of the time per analysed frame, and the frame rate it allows."""

    def __init__(self, fps_cap: float, *, share: float = SHARE,
                 smoothing: float = SMOOTHING) -> None:
        if fps_cap <= 0 or not 0 < share <= 1 or not 0 < smoothing <= 1:
            raise ValueError("need fps_cap > 0, 0 < share <= 1 and 0 < smoothing <= 1")
        self.fps_cap = fps_cap
        self.share = share
        self.smoothing = smoothing
        self._mean_s: float | None = None
        self._warm = False

    def observe(self, busy_s: float) -> None:
        """Note the time one frame took to analyse (s).

        The first frame is left out: it includes the detector's one-off start-up
        (memory planning, caches), often several times a normal frame.
        """
        if not self._warm:
            self._warm = True
            return
        busy_s = max(busy_s, 0.0)
        if self._mean_s is None:
            self._mean_s = busy_s
        else:
            self._mean_s += self.smoothing * (busy_s - self._mean_s)

    @property
    def fps(self) -> float:
        """The analysis rate this CPU allows, within MIN_FPS..fps_cap (fps_cap until measured)."""
        if not self._mean_s:
            return self.fps_cap
        return max(min(self.fps_cap, self.share / self._mean_s), min(MIN_FPS, self.fps_cap))


def next_keep_after(now_s: float, next_keep_s: float, period_s: float) -> float | None:
    """When the frame after one arriving at ``now_s`` may be kept, or None to skip this one.

    Keeping at most one frame per ``period_s``, evenly: a frame up to a fifth of a
    period early is kept (a source's own timing jitters), and a late one does not
    make the next come sooner than half a period after it, so frames kept after a
    stall are not bunched. The live source and ``lokaalmeten count --analysis-fps``
    (a slower box, emulated on video time) keep frames by this one rule.
    """
    if now_s < next_keep_s - 0.2 * period_s:
        return None
    return max(next_keep_s + period_s, now_s + 0.5 * period_s)


class KeepRate:
    """Which frames, taken in order with their times, a box that analyses at most ``fps``
    per second keeps (None: every frame), by ``next_keep_after``: on video time it shows
    on a fast machine what a Raspberry Pi, skipping what it cannot keep up with, would
    analyse (``lokaalmeten count --analysis-fps``, ``bench/accuracy.py``)."""

    def __init__(self, fps: float | None, *, start_s: float = 0.0) -> None:
        if fps is not None and not 0 < fps < math.inf:
            raise ValueError("must be a number above 0")
        self.fps = fps
        self.taken = 0
        """Frames kept so far."""
        self._next_s = start_s

    def keeps(self, t_s: float) -> bool:
        """Whether the frame at ``t_s`` is kept; call it once per frame, in order."""
        if self.fps is not None:
            following = next_keep_after(t_s, self._next_s, 1.0 / self.fps)
            if following is None:
                return False
            self._next_s = following
        self.taken += 1
        return True
