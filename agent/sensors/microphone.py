"""Microphone sound level meter: a capture device in, IEC 61672 levels per interval out.

Sources: IEC 61672-1 (the meter in ``agent.sound``, see docs/noise.md); the
microphone datasheets for the default calibration (ICS-43434, INMP441 and
SPH0645LM4H all state −26 dBFS for a 94 dB SPL 1 kHz tone).

Unlike the other drivers, the "device" produces a continuous stream, so the
driver keeps a meter thread of its own:

    capture callback ──► bounded queue ──► meter thread (A/C/Z, Fast, Leq) ──► intervals
                           (AudioSource)     (this module)                   read() takes them

* The capture callback only copies blocks; all DSP runs on the meter thread,
  never on the audio thread, so a slow filter can at worst fill the queue,
  which is counted, not block the capture.
* The meter's interval is the sensor's sampling interval: the daemon fills in
  ``options.interval_s`` from ``interval_s`` when it opens the sensor, so each
  ``read`` in the sampler's schedule returns exactly one interval and
  LA10/LA50/LA90 are exact over it. Keep ``window_s`` equal to ``interval_s``
  for exact percentiles; a longer window averages them (profile notes).
* ``read`` returns every completed interval not returned before, oldest first
  (normally exactly one; two if the sound card's clock drifted across a slot),
  and raises :class:`DataNotReady` when none completed. When the next interval
  is due within a moment (≤ ``min(0.5 s, interval/2)``) it waits for it, so
  the sampler's slot and the capture clock need not be aligned.
* Lost audio: an interval during which capture lost blocks (PortAudio overflow
  or a full queue) is not published: its Leq would silently describe a
  shorter time and its max/min/percentiles would miss part of it. ``read``
  raises :class:`SensorError` naming the lost blocks (the heartbeat counts it
  in ``errors_total``), and ``frames_rejected`` counts lost blocks since start.
* No audio at all for ``_STALL_S`` raises :class:`SensorError` (a dead stream);
  the sampler's reset then restarts the capture and the meter. Silence is measured
  on the source's clock (``AudioSource.clock``), as other drivers time on their bus's.

Privacy: samples live only in the queue and the meter's buffers. Nothing here
writes, logs or sends audio; only the per-interval levels leave ``read``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from pydantic import Field, model_validator

from agent.bus.audio import DEFAULT_BLOCK_S, DEFAULT_BUFFER_S, AudioSource, Block
from agent.config.options import DriverOptions
from agent.errors import AgentError, DataNotReady, SensorError
from agent.models import Reading
from agent.sensors import register
from agent.sensors.base import BusKind

if TYPE_CHECKING:
    from agent.sound import IntervalLevels, SoundLevelMeter

log = logging.getLogger(__name__)

MEMS_SENSITIVITY_DBFS = -26.0
"""ICS-43434 / INMP441 / SPH0645LM4H: a 94 dB SPL, 1 kHz sine reads −26 dBFS."""
DEFAULT_OFFSET_DB = 94.0 - MEMS_SENSITIVITY_DBFS - 10 * math.log10(0.5)
"""offset = 94 − S + 3.01 dB = 123.01 dB (agent.sound.offset_from_sensitivity)."""

_READ_TIMEOUT_S = 0.25  # the meter thread polls its stop flag this often
_MAX_GRACE_S = 0.5  # longest wait in read() for an interval that is about to complete
_LATENCY_S = 0.25  # scheduling slack on top of one capture block
_STALL_S = 3.0  # no audio for this long is a failure
_KEEP_INTERVALS = 64  # completed intervals kept when nobody reads them


class MicrophoneOptions(DriverOptions):
    """Per-sensor settings for the ``[sensors.<id>.options]`` table."""

    sample_rate: int = Field(
        default=48000, description="Capture rate in Hz. 48 kHz covers the A and C weightings up to "
        "20 kHz.")
    calibration_offset_db: float = Field(
        default=DEFAULT_OFFSET_DB, description="dB re 20 µPa of a full-scale square wave: set it "
        "with ``lokaalmeten calibrate``. The default (123.01 dB) is the datasheet value for −26 "
        "dBFS microphones.")
    c_weighting: bool = Field(
        default=True, description="Also measure LCeq (the C-weighted level; LCeq − LAeq shows "
        "low-frequency noise).")
    z_weighting: bool = Field(default=True, description="Also measure LZeq (unweighted).")
    channel: int = Field(
        default=0, description="Input channel: 0 = left (the mic's L/R or SEL pin to GND), 1 = "
        "right.")
    block_s: float = Field(
        default=DEFAULT_BLOCK_S, description="Capture period in s: audio handed over per callback.")
    buffer_s: float = Field(
        default=DEFAULT_BUFFER_S, description="Seconds of audio queued while the meter is busy; "
        "beyond it audio is lost (counted).")
    settle_s: float = Field(
        default=0.2, description="Audio discarded after each start, in s: capsules and codecs "
        "start with a pop (an INMP441 outputs data 2^18 SCK cycles, 85 ms at 3.072 MHz, after "
        "power-up).")
    interval_s: float | None = Field(
        default=None, description="The meter's interval in s. The daemon sets it to the sensor's "
        "``interval_s`` (a value here is overridden); set it only when using the driver on its "
        "own.")

    @model_validator(mode="after")
    def _check(self) -> MicrophoneOptions:
        if not 8000 <= self.sample_rate <= 192000:
            raise ValueError(f"sample_rate {self.sample_rate} outside 8000..192000 Hz")
        if not 0 <= self.channel <= 7:
            raise ValueError(f"channel {self.channel} outside 0..7")
        if not 0.005 <= self.block_s <= 1.0:
            raise ValueError(f"block_s {self.block_s} outside 0.005..1 s")
        if self.buffer_s < 2 * self.block_s:
            raise ValueError("buffer_s must hold at least two blocks")
        if self.settle_s < 0:
            raise ValueError("settle_s must not be negative")
        if self.interval_s is not None and self.interval_s < 0.1:
            raise ValueError(f"interval_s {self.interval_s} is below 0.1 s")
        return self

    @property
    def meter_interval_s(self) -> float:
        return 1.0 if self.interval_s is None else self.interval_s


@dataclass(frozen=True, slots=True)
class _Done:
    """A completed interval and the audio blocks lost while it was measured."""

    levels: IntervalLevels
    lost_blocks: int


@register("microphone", bus=BusKind.AUDIO, options=MicrophoneOptions)
class Microphone:
    """Sound level meter on a capture device; one reading set per interval."""

    model: ClassVar[str] = "microphone"
    quantities: ClassVar[tuple[str, ...]] = (
        "laeq", "lafmax", "lafmin", "la10", "la50", "la90", "lceq", "lzeq")

    def __init__(self, source: AudioSource, options: MicrophoneOptions) -> None:
        self._source = source
        self.options = options
        self.frames_rejected = 0  # audio blocks lost to capture overruns since start
        self.bytes_discarded = 0  # not a serial line
        self.intervals_dropped = 0  # intervals withheld because audio was lost in them
        self._cond = threading.Condition()
        self._done: deque[_Done] = deque(maxlen=_KEEP_INTERVALS)
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self._fatal: AgentError | None = None
        self._meter: SoundLevelMeter | None = None
        self._interval_frames = 0
        self._fed = 0  # frames given to the meter since start
        self._settle_left = 0
        self._lost_pending = 0  # blocks lost since the last completed interval
        self._overruns_seen = 0
        self._last_audio = 0.0

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start capturing and metering (a fresh meter; anything earlier is discarded)."""
        if self._thread is not None:
            return
        rate = self._source.sample_rate
        self._meter = _new_meter(rate, self.options)
        self._interval_frames = self._meter.interval_samples
        with self._cond:
            self._done.clear()
            self._fatal = None
        self._fed = 0
        self._settle_left = round(self.options.settle_s * rate)
        self._lost_pending = 0
        self._overruns_seen = self._source.overruns
        self._source.start()
        self._last_audio = self._source.clock.monotonic()
        self._halt.clear()
        self._thread = threading.Thread(target=self._run, name="sound-meter", daemon=True)
        self._thread.start()

    def read(self) -> list[Reading]:
        """Levels of every interval completed since the previous read, oldest first."""
        if self._meter is None:
            raise SensorError("microphone: read before start")
        with self._cond:
            if not self._done and self._fatal is None:
                wait = self._due_in_s()
                if wait <= min(_MAX_GRACE_S, self.options.meter_interval_s / 2):
                    self._cond.wait_for(lambda: bool(self._done) or self._fatal is not None,
                                        timeout=wait + self.options.block_s + _LATENCY_S)
            if self._fatal is not None:
                raise self._fatal
            done = list(self._done)
            self._done.clear()
        silent_s = self._source.clock.monotonic() - self._last_audio
        if not done and silent_s > _STALL_S:
            raise SensorError(f"microphone: no audio from the capture device for "
                              f"{silent_s:.1f} s")
        good = [d.levels for d in done if d.lost_blocks == 0]
        lost = sum(d.lost_blocks for d in done)
        if lost:
            self.intervals_dropped += len(done) - len(good)
            log.warning("microphone: %d audio block(s) lost; %d interval(s) withheld",
                        lost, len(done) - len(good))
        if good:
            return [r for levels in good for r in levels.readings()]
        if done:
            raise SensorError(f"microphone: {lost} audio block(s) lost to capture overruns; "
                              f"{len(done)} interval(s) withheld")
        raise DataNotReady("microphone: the current interval has not completed yet")

    def reset(self) -> None:
        """Restart capture and meter from scratch."""
        self.stop()
        self.start()

    def stop(self) -> None:
        """Stop the meter thread, then the capture; buffered audio is dropped."""
        thread, self._thread = self._thread, None
        self._halt.set()
        if thread is not None:
            thread.join(timeout=5.0)
        self._source.stop()

    # -- meter thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._halt.is_set():
                block = self._source.read(_READ_TIMEOUT_S)
                self._count_overruns()
                if block is not None:
                    self._last_audio = self._source.clock.monotonic()
                    self._feed(block)
        except AgentError as exc:
            self._fail(exc)
        except Exception as exc:  # a meter bug must surface in read(), not kill silently
            log.exception("microphone: sound level meter failed")
            self._fail(SensorError(f"microphone: sound level meter failed: {exc}"))

    def _count_overruns(self) -> None:
        total = self._source.overruns
        if total != self._overruns_seen:
            lost, self._overruns_seen = total - self._overruns_seen, total
            self._lost_pending += lost
            self.frames_rejected += lost

    def _feed(self, block: Block) -> None:
        assert self._meter is not None
        if self._settle_left:
            skip = min(self._settle_left, block.size)
            self._settle_left -= skip
            block = block[skip:]
            if not block.size:
                return
        completed = self._meter.feed(block)
        self._fed += block.size
        if not completed:
            return
        with self._cond:
            for levels in completed:
                self._done.append(_Done(levels, self._lost_pending))
                self._lost_pending = 0
            self._cond.notify_all()

    def _fail(self, exc: AgentError) -> None:
        with self._cond:
            self._fatal = exc
            self._cond.notify_all()

    def _due_in_s(self) -> float:
        """Seconds of audio still to come before the current interval completes."""
        left = self._settle_left + self._interval_frames - self._fed % self._interval_frames
        return left / self._source.sample_rate


def _new_meter(sample_rate: int, options: MicrophoneOptions) -> SoundLevelMeter:
    try:
        from agent.sound import SoundLevelMeter  # noqa: PLC0415 - scipy is the sound extra
    except ImportError as exc:
        raise SensorError(f"microphone: the sound level meter needs the sound extra "
                          f"(pip install 'lokaalmeten-agent[sound]'): {exc}") from exc
    return SoundLevelMeter(sample_rate, options.meter_interval_s,
                           options.calibration_offset_db, c_weighting=options.c_weighting,
                           z_weighting=options.z_weighting)
