"""Sound capture: mono float32 blocks from a sound card, a WAV file or a generator.

An :class:`AudioSource` is the audio counterpart of a serial link or an I2C
device: it is opened by the bus provider, handed to the microphone driver, and
knows nothing of levels. Every source hands out blocks of ``block_s`` seconds
of one channel at ``sample_rate`` and counts the blocks it lost in
``overruns`` (a monotonic counter for the life of the source).

* :class:`SoundDeviceSource` captures from ALSA through PortAudio
  (``sounddevice``, imported only when a capture starts). Its callback runs
  on PortAudio's real-time thread and only copies the block into a bounded
  queue: no DSP, no locks, no logging there. A block PortAudio reports as
  overflowed, and a block that finds the queue full (the meter fell more than
  ``buffer_s`` behind), each count one overrun.
* :class:`PacedSource` hands out blocks from a producer function at real-time
  pace, as a sound card would: simulated microphones and WAV replay use it.
  A consumer that falls more than ``buffer_s`` behind loses blocks and the
  source counts them, so simulated mode exercises the same loss accounting.
* :class:`WavSource` replays a WAV file (looping) through a PacedSource: a box
  configured with ``device = "wav:/path/file.wav"`` measures a known recording.

Audio stays in memory: nothing here writes samples anywhere.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from agent.clock import SYSTEM, Clock
from agent.errors import BusError

log = logging.getLogger(__name__)

WAV_PREFIX = "wav:"
"""A device name starting with this replays the WAV file named after it."""
DEFAULT_BLOCK_S = 0.1
"""Capture period: 4800 frames at 48 kHz, ten callbacks a second."""
DEFAULT_BUFFER_S = 5.0
"""Audio kept while the consumer is busy; anything beyond it is lost and counted."""

Block = NDArray[np.float32]
Producer = Callable[[int], NDArray[Any] | None]


class AudioSource(Protocol):
    """What the microphone driver needs from a capture device."""

    @property
    def sample_rate(self) -> int:
        """Frames per second of the blocks ``read`` returns."""

    @property
    def overruns(self) -> int:
        """Blocks lost since the source was made (driver overflow or full queue)."""

    @property
    def clock(self) -> Clock:
        """The source's time, as an I2C device's or a serial link's: the driver measures
        silence on it, so a test's clock can make a capture fall silent for minutes."""

    def start(self) -> None:
        """Begin capturing; raises :class:`~agent.errors.BusError` if the device cannot."""

    def read(self, timeout_s: float) -> Block | None:
        """The next block of mono samples (full scale 1.0), or None after ``timeout_s``."""

    def stop(self) -> None:
        """Stop capturing and drop buffered audio; ``start`` may be called again."""

    def close(self) -> None:
        """Release the device for good."""


def frames_per_block(sample_rate: int, block_s: float) -> int:
    """Frames in one capture block (at least one)."""
    return max(1, round(sample_rate * block_s))


class PacedSource:
    """Blocks from ``produce(frames)`` handed out no faster than real time.

    Block k becomes available once (k + 1)·block_s seconds have passed since
    ``start``, as from a sound card. ``produce`` returning None ends the
    stream (``read`` then only times out). ``inject_overrun`` drops blocks as
    an overflowing capture buffer would, for tests and fault injection.
    """

    def __init__(self, produce: Producer, sample_rate: int, *,
                 block_s: float = DEFAULT_BLOCK_S, buffer_s: float = DEFAULT_BUFFER_S,
                 name: str = "generated", clock: Clock = SYSTEM) -> None:
        if sample_rate <= 0 or block_s <= 0:
            raise ValueError("sample rate and block length must be positive")
        self.name = name
        self._produce = produce
        self._rate = int(sample_rate)
        self._frames = frames_per_block(self._rate, block_s)
        self._max_lag_blocks = max(1, math.floor(buffer_s / block_s))
        self.clock = clock
        """Paces the blocks and every wait for one."""
        self._wake = threading.Event()
        self._running = False
        self._ended = False
        self._t0 = 0.0
        self._emitted = 0  # frames handed out or dropped since start
        self._overruns = 0
        self._to_drop = 0

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def overruns(self) -> int:
        return self._overruns

    def start(self) -> None:
        self._wake.clear()
        self._t0 = self.clock.monotonic()
        self._emitted = 0
        self._running = True

    def read(self, timeout_s: float) -> Block | None:
        if not self._running:
            raise BusError(f"audio {self.name}: read before start")
        due = self._t0 + (self._emitted + self._frames) / self._rate
        wait = due - self.clock.monotonic()
        if self._ended or wait > timeout_s:
            self.clock.wait(self._wake, max(0.0, timeout_s))
            return None
        if wait > 0 and self.clock.wait(self._wake, wait):
            return None  # stopped meanwhile
        lag_blocks = math.floor((self.clock.monotonic() - due) * self._rate / self._frames)
        self._skip(self._to_drop + max(0, lag_blocks - self._max_lag_blocks))
        self._to_drop = 0
        block = self._next()
        if block is None:
            return None
        self._emitted += block.size
        return block

    def stop(self) -> None:
        self._running = False
        self._wake.set()

    def close(self) -> None:
        self.stop()

    def inject_overrun(self, blocks: int = 1) -> None:
        """Fault injection: the next ``read`` loses ``blocks`` blocks first."""
        self._to_drop += blocks

    def _skip(self, blocks: int) -> None:
        """Lose ``blocks`` blocks: the signal moves on, the time passes, nobody sees them."""
        for _ in range(blocks):
            lost = self._next()
            if lost is None:
                return
            self._emitted += lost.size
            self._overruns += 1

    def _next(self) -> Block | None:
        data = self._produce(self._frames)
        if data is None or len(data) == 0:
            self._ended = True
            return None
        return np.asarray(data, dtype=np.float32).ravel()


class _LoopingFile:
    """Frames of one channel of a WAV file, from the top again at the end (if looping)."""

    def __init__(self, path: Path, channel: int, loop: bool) -> None:
        self._path, self._channel, self._loop = path, channel, loop
        self._blocks: Iterator[NDArray[np.float64]] | None = None
        self._rest: NDArray[np.float64] = np.zeros(0)
        self._done = False

    def read(self, frames: int) -> NDArray[np.float64] | None:
        from agent.sound.wav import iter_blocks  # noqa: PLC0415 - replay only

        parts, have = [self._rest], self._rest.size
        while have < frames and not self._done:
            if self._blocks is None:
                self._blocks = iter_blocks(self._path, frames, self._channel)
            block = next(self._blocks, None)
            if block is None:
                self._blocks = None
                self._done = not self._loop
                continue
            parts.append(block)
            have += block.size
        data = np.concatenate(parts)
        self._rest = data[frames:]
        out = data[:frames]
        return out if out.size else None


class WavSource(PacedSource):
    """A WAV file replayed at real-time pace, looping by default (``device = "wav:…"``).

    The blocks come at the file's own sample rate, whatever was asked for: a
    recording is measured as it is rather than resampled.
    """

    def __init__(self, path: str | Path, *, channel: int = 0, loop: bool = True,
                 block_s: float = DEFAULT_BLOCK_S, buffer_s: float = DEFAULT_BUFFER_S,
                 clock: Clock = SYSTEM) -> None:
        from agent.sound.wav import read_format  # noqa: PLC0415 - replay only

        self.path = Path(path)
        try:
            fmt = read_format(self.path)
        except (OSError, ValueError) as exc:
            raise BusError(f"audio {WAV_PREFIX}{self.path}: cannot replay: {exc}") from exc
        if fmt.frames == 0:
            raise BusError(f"audio {WAV_PREFIX}{self.path}: the recording holds no samples")
        if not 0 <= channel < fmt.channels:
            raise BusError(f"audio {WAV_PREFIX}{self.path}: no channel {channel} in a "
                           f"{fmt.channels}-channel file")
        frames = _LoopingFile(self.path, channel, loop)
        super().__init__(frames.read, fmt.sample_rate, block_s=block_s, buffer_s=buffer_s,
                         name=f"{WAV_PREFIX}{self.path}", clock=clock)


class SoundDeviceSource:
    """Capture from a PortAudio (ALSA) input device through ``sounddevice``.

    ``device`` is matched as ``sounddevice`` does: a device index, or
    space-separated parts of the name PortAudio shows (``python -m
    sounddevice`` lists them), e.g. ``"default"``, ``"hw:1,0"``,
    ``"snd_rpi_googlevoicehat"``. Stereo I2S cards that refuse mono capture
    are opened with two channels and ``channel`` is kept.
    """

    def __init__(self, device: str | int, sample_rate: int, *, channel: int = 0,
                 block_s: float = DEFAULT_BLOCK_S, buffer_s: float = DEFAULT_BUFFER_S) -> None:
        self.device = device
        self.clock = SYSTEM
        """A sound card keeps real time: its blocks come when they come."""
        self._rate = int(sample_rate)
        self._channel = channel
        self._frames = frames_per_block(self._rate, block_s)
        self._queue: queue.Queue[Block] = queue.Queue(
            maxsize=max(2, math.ceil(buffer_s / block_s)))
        self._stream: Any = None
        self._overruns = 0
        self._finished = False

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def overruns(self) -> int:
        return self._overruns

    def start(self) -> None:
        if self._stream is not None:
            return
        sd = _sounddevice()
        try:
            info = sd.query_devices(self.device, "input")
            channels = max(self._channel + 1, min(int(info["max_input_channels"]), 2))
            stream = sd.InputStream(
                samplerate=self._rate, blocksize=self._frames, device=self.device,
                channels=channels, dtype="float32", latency="high",
                callback=self._callback, finished_callback=self._on_finished)
            self._finished = False
            stream.start()
        except (sd.PortAudioError, ValueError) as exc:
            raise BusError(f"audio {self.device}: cannot capture at {self._rate} Hz: "
                           f"{exc}") from exc
        self._stream = stream
        log.info("audio %s: capturing %d Hz, %d channel(s), channel %d measured",
                 self.device, self._rate, channels, self._channel)

    def read(self, timeout_s: float) -> Block | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            if self._stream is None or self._finished:
                raise BusError(f"audio {self.device}: capture stopped") from None
            return None

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as exc:  # PortAudio errors on a vanished device; nothing to keep
                log.info("audio %s: closing the stream failed: %s", self.device, exc)
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        self.stop()

    # -- PortAudio's thread: copy and count, nothing else ---------------------------

    def _callback(self, indata: NDArray[np.float32], frames: int, time_info: Any,
                  status: Any) -> None:
        if status.input_overflow:
            self._overruns += 1
        try:
            self._queue.put_nowait(indata[:, self._channel].copy())
        except queue.Full:
            self._overruns += 1

    def _on_finished(self) -> None:
        self._finished = True


def _sounddevice() -> Any:
    """Import ``sounddevice`` (and so PortAudio) only when a capture really starts."""
    try:
        import sounddevice  # noqa: PLC0415 - optional, and loading PortAudio costs time
    except (ImportError, OSError) as exc:
        raise BusError(f"audio capture unavailable ({exc}); install the sound extra "
                       "(pip install 'lokaalmeten-agent[sound]') and PortAudio "
                       "(apt install libportaudio2)") from exc
    return sounddevice


def open_audio(device: str, sample_rate: int, *, channel: int = 0,
               block_s: float = DEFAULT_BLOCK_S,
               buffer_s: float = DEFAULT_BUFFER_S) -> AudioSource:
    """The source a config's ``device`` names: ``wav:<path>`` or a capture device."""
    if device.startswith(WAV_PREFIX):
        source = WavSource(device[len(WAV_PREFIX):], channel=channel, block_s=block_s,
                           buffer_s=buffer_s)
        if source.sample_rate != sample_rate:
            log.info("%s: replaying at the file's %d Hz (configured %d Hz)", device,
                     source.sample_rate, sample_rate)
        return source
    return SoundDeviceSource(device, sample_rate, channel=channel, block_s=block_s,
                             buffer_s=buffer_s)
