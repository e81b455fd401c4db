"""Audio sources: real-time pacing, overrun accounting, WAV replay and looping.

The PortAudio capture itself needs a sound card, which the test machine has not;
what can be checked without one is checked here: opening a device that does not
exist fails with a BusError (with or without PortAudio installed), and the
capture callback's copy-and-count logic, called as PortAudio would call it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from agent.bus.audio import (
    WAV_PREFIX,
    PacedSource,
    SoundDeviceSource,
    WavSource,
    frames_per_block,
    open_audio,
)
from agent.bus.provider import HardwareBuses
from agent.emulators.simulation import SimulatedBuses
from agent.errors import BusError
from tests.clock import FakeClock
from tests.wavfile import write_wav

FS = 8000
START_S = 100.0
"""Where the fake clock starts: the block arithmetic below comes out exact from here."""


def next_block(source: PacedSource, clock: FakeClock, block_s: float = 0.1) -> np.ndarray | None:
    """Let one block's worth of time pass, then read (tolerating float rounding of the clock)."""
    clock.now += block_s
    return source.read(0.01)


def counting(frames: int, state: list[int]) -> np.ndarray:
    """Producer of a ramp 0, 1, 2, … so lost and repeated samples are visible."""
    start = state[0]
    state[0] += frames
    return np.arange(start, start + frames, dtype=np.float64)


def ramp_source(clock: FakeClock, **kw: object) -> PacedSource:
    state = [0]
    return PacedSource(lambda n: counting(n, state), FS, block_s=0.1, clock=clock, **kw)


def test_block_size_follows_the_rate() -> None:
    assert frames_per_block(48000, 0.1) == 4800
    assert frames_per_block(44100, 0.01) == 441
    assert frames_per_block(8000, 1e-9) == 1


def test_paced_source_hands_out_a_block_only_once_its_time_has_passed() -> None:
    clock = FakeClock(START_S)
    source = ramp_source(clock)
    source.start()
    assert source.read(0.0) is None  # block 0 is due 0.1 s after start
    clock.now += 0.1
    block = source.read(0.0)
    assert block is not None and block.dtype == np.float32
    assert block.tolist() == list(range(800))
    assert source.read(0.0) is None
    clock.now += 0.25
    assert source.read(0.0)[0] == 800  # type: ignore[index]
    assert source.read(0.0)[0] == 1600  # type: ignore[index]
    assert source.read(0.0) is None
    assert source.overruns == 0


def test_paced_source_keeps_real_time_pace_on_the_real_clock() -> None:
    source = PacedSource(np.zeros, FS, block_s=0.02)
    source.start()
    began = time.monotonic()
    got = 0
    while got < 10:
        if source.read(0.5) is not None:
            got += 1
    assert time.monotonic() - began >= 10 * 0.02 - 0.005


def test_consumer_falling_behind_the_buffer_loses_and_counts_blocks() -> None:
    clock = FakeClock(START_S)
    source = ramp_source(clock, buffer_s=1.0)  # holds 10 blocks
    source.start()
    clock.now += 3.0  # 30 blocks became due; only the newest 10 are still buffered
    block = source.read(0.0)
    assert source.overruns == 19
    assert block is not None and block[0] == 19 * 800  # the signal moved on meanwhile
    for _ in range(10):
        assert source.read(0.0) is not None
    assert source.read(0.0) is None
    assert source.overruns == 19


def test_injected_overrun_skips_the_next_blocks() -> None:
    clock = FakeClock(START_S)
    source = ramp_source(clock)
    source.start()
    source.inject_overrun(2)
    clock.now += 1.0
    assert source.read(0.0)[0] == 2 * 800  # type: ignore[index]
    assert source.overruns == 2


def test_a_finished_producer_ends_the_stream() -> None:
    clock = FakeClock(START_S)
    chunks = [np.ones(800), np.ones(300)]
    source = PacedSource(lambda n: chunks.pop(0) if chunks else None, FS, block_s=0.1,
                         clock=clock)
    source.start()
    assert next_block(source, clock).size == 800  # type: ignore[union-attr]
    assert next_block(source, clock).size == 300  # type: ignore[union-attr]
    assert next_block(source, clock) is None
    assert next_block(source, clock) is None


def test_stop_wakes_a_reader_waiting_on_the_real_clock() -> None:
    source = PacedSource(np.zeros, FS, block_s=30.0)
    with pytest.raises(BusError, match="before start"):
        source.read(0.0)
    source.start()
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(source.read(60.0)))
    reader.start()
    time.sleep(0.05)
    source.stop()
    reader.join(timeout=2.0)
    assert not reader.is_alive() and result == [None]
    with pytest.raises(BusError, match="before start"):
        source.read(0.0)  # a stopped source refuses rather than blocks


def test_start_restarts_the_pace() -> None:
    clock = FakeClock(START_S)
    source = ramp_source(clock)
    source.start()
    clock.now += 5.0
    source.stop()
    source.start()
    assert source.read(0.0) is None, "the time before the restart makes no block due"
    clock.now += 0.1
    assert source.read(0.0) is not None


# -- WAV replay ---------------------------------------------------------------------

def test_wav_source_loops_the_recording_seamlessly(tmp_path: Path) -> None:
    samples = np.linspace(-0.5, 0.5, 2000)  # 0.25 s at 8 kHz
    wav = write_wav(tmp_path / "ramp.wav", samples, FS)
    clock = FakeClock(START_S)
    source = WavSource(wav, clock=clock)
    assert source.sample_rate == FS
    source.start()
    got = np.concatenate([next_block(source, clock) for _ in range(6)])  # type: ignore[misc]
    expected = np.tile(np.round(samples * 32768) / 32768, 3)[: got.size]
    assert got.size == 4800
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_wav_source_without_loop_ends(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "short.wav", np.zeros(1000), FS)
    clock = FakeClock(START_S)
    source = WavSource(wav, loop=False, clock=clock)
    source.start()
    assert next_block(source, clock).size == 800  # type: ignore[union-attr]
    assert next_block(source, clock).size == 200  # type: ignore[union-attr]
    assert next_block(source, clock) is None


def test_wav_source_takes_the_asked_channel(tmp_path: Path) -> None:
    stereo = np.column_stack([np.full(800, 0.25), np.full(800, -0.5)])
    wav = write_wav(tmp_path / "stereo.wav", stereo, FS)
    clock = FakeClock(START_S)
    source = WavSource(wav, channel=1, clock=clock)
    source.start()
    assert next_block(source, clock)[0] == pytest.approx(-0.5)  # type: ignore[index]
    with pytest.raises(BusError, match="no channel 2"):
        WavSource(wav, channel=2)


@pytest.mark.parametrize("content", [b"", b"RIFF....WAVEjunk", b"not audio at all"])
def test_unreadable_recordings_are_bus_errors(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    with pytest.raises(BusError, match="cannot replay"):
        WavSource(bad)
    with pytest.raises(BusError, match="cannot replay"):
        WavSource(tmp_path / "missing.wav")


def test_empty_recording_is_refused(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "empty.wav", np.zeros(0), FS)
    with pytest.raises(BusError, match="no samples"):
        WavSource(wav)


def test_open_audio_dispatches_on_the_device_name(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "a.wav", np.zeros(100), 16000)
    source = open_audio(f"{WAV_PREFIX}{wav}", 48000)
    assert isinstance(source, WavSource) and source.sample_rate == 16000
    capture = open_audio("hw:7,0", 48000, channel=1)  # nothing is opened until start()
    assert isinstance(capture, SoundDeviceSource) and capture.sample_rate == 48000
    assert isinstance(HardwareBuses().audio(f"{WAV_PREFIX}{wav}", 48000), WavSource)


# -- PortAudio capture, as far as it goes without a sound card ------------------------

def test_capturing_from_a_missing_device_is_a_bus_error() -> None:
    source = SoundDeviceSource("lokaalmeten-no-such-card", 48000)
    with pytest.raises(BusError, match="audio"):
        source.start()
    with pytest.raises(BusError, match="capture stopped"):
        source.read(0.0)


def test_callback_copies_the_channel_and_counts_overflows_and_a_full_queue() -> None:
    source = SoundDeviceSource("unused", 48000, channel=1, block_s=0.1, buffer_s=0.2)
    quiet = SimpleNamespace(input_overflow=False)
    frames = np.column_stack([np.zeros(4800), np.full(4800, 0.5)]).astype(np.float32)
    source._callback(frames, 4800, None, quiet)
    source._callback(frames, 4800, None, SimpleNamespace(input_overflow=True))
    assert source.overruns == 1
    source._callback(frames, 4800, None, quiet)  # the queue holds two blocks: this one is lost
    assert source.overruns == 2
    frames[:] = 0  # PortAudio reuses its buffer; the queued block must be a copy
    source._stream = object()  # as if running, so an empty queue is a timeout, not an error
    block = source.read(0.0)
    assert block is not None and block.shape == (4800,) and float(block[0]) == 0.5
    assert source.read(0.0) is not None
    assert source.read(0.0) is None
    source._stream = None


# -- simulated boxes ------------------------------------------------------------------

def test_simulated_buses_give_street_noise_and_reuse_it_on_reopen(tmp_path: Path) -> None:
    buses = SimulatedBuses(tmp_path)
    source = buses.audio("default", 48000)
    assert isinstance(source, PacedSource) and source.sample_rate == 48000
    assert buses.audio("default", 48000) is source
    assert buses.audio("default", 44100).sample_rate == 44100
    wav = write_wav(tmp_path / "a.wav", np.zeros(100), FS)
    assert isinstance(buses.audio(f"{WAV_PREFIX}{wav}", 48000), WavSource)
    buses.close()
