"""Read WAV files in blocks as float samples (full scale 1.0), and analyse them.

A small RIFF reader instead of the stdlib ``wave`` module: on Python 3.11
``wave`` refuses IEEE-float files (format 3) and every WAVE_FORMAT_EXTENSIBLE
file (3.12 accepts extensible PCM only), and recorders write extensible headers
for 24/32-bit and multichannel audio. Walking the chunks ourselves is a few
lines and reads all of them; numpy does the sample conversion, including the
manual sign extension of 24-bit PCM. ``soundfile`` would also do, but needs
libsndfile on the box for no gain here.

Supported: PCM 8 (unsigned), 16, 24 and 32 bit; IEEE float 32 and 64 bit;
plain or extensible headers; any channel count (one channel is taken).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.typing import NDArray

from agent.sound.meter import IntervalLevels, SoundLevelMeter

_PCM = 0x0001
_IEEE_FLOAT = 0x0003
_EXTENSIBLE = 0xFFFE
_UNKNOWN_SIZE = 0xFFFFFFFF  # streaming writers leave the data size open


@dataclass(frozen=True, slots=True)
class WavFormat:
    """What the ``fmt `` chunk says, plus where the samples are."""

    sample_rate: int
    channels: int
    bits: int
    """Container bits per sample (8, 16, 24, 32 or 64)."""
    is_float: bool
    frames: int
    data_offset: int

    @property
    def duration_s(self) -> float:
        """Length of the recording in seconds."""
        return self.frames / self.sample_rate


def read_format(path: str | Path) -> WavFormat:
    """Parse the RIFF header of a WAV file; ``ValueError`` if it is not one we read."""
    with open(path, "rb") as f:
        return _parse_header(f, Path(path).stat().st_size)


def _parse_header(f: BinaryIO, file_size: int) -> WavFormat:
    riff = f.read(12)
    if len(riff) < 12 or riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None  # tag, channels, rate, bits
    while True:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError("no data chunk")
        chunk_id, size = head[:4], struct.unpack("<I", head[4:])[0]
        if chunk_id == b"fmt ":
            body = f.read(size + (size & 1))
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # first bytes of the sub-format GUID
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise ValueError("data chunk before fmt chunk")
            offset = f.tell()
            if size in (0, _UNKNOWN_SIZE) or offset + size > file_size:
                size = file_size - offset  # open-ended or truncated: read to the end
            return _format(fmt, size, offset)
        else:
            f.seek(size + (size & 1), 1)  # chunks are padded to even length


def _format(fmt: tuple[int, int, int, int], size: int, offset: int) -> WavFormat:
    tag, channels, rate, bits = fmt
    pcm_ok = tag == _PCM and bits in (8, 16, 24, 32)
    float_ok = tag == _IEEE_FLOAT and bits in (32, 64)
    if not (pcm_ok or float_ok) or channels < 1 or rate < 1:
        raise ValueError(f"unsupported WAV format: tag {tag:#x}, {bits} bit, {channels} ch")
    frame_bytes = channels * bits // 8
    return WavFormat(rate, channels, bits, tag == _IEEE_FLOAT, size // frame_bytes, offset)


def _decode(raw: bytes, fmt: WavFormat, channel: int) -> NDArray[np.float64]:
    """Bytes of whole frames → float64 samples of one channel, full scale 1.0."""
    width = fmt.bits // 8
    if fmt.is_float:
        data = np.frombuffer(raw, dtype=f"<f{width}").astype(np.float64)
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 3:
        # Put each 3-byte little-endian sample in the top of an int32, then
        # shift back down: the arithmetic shift sign-extends.
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        wide = np.zeros((b.shape[0], 4), dtype=np.uint8)
        wide[:, 1:] = b
        data = (wide.view("<i4").ravel() >> 8).astype(np.float64) / 2.0**23
    else:
        data = np.frombuffer(raw, dtype=f"<i{width}").astype(np.float64) / 2.0 ** (fmt.bits - 1)
    return np.asarray(data.reshape(-1, fmt.channels)[:, channel], dtype=np.float64)


def iter_blocks(
    path: str | Path, block_frames: int = 48000, channel: int = 0
) -> Iterator[NDArray[np.float64]]:
    """Yield the samples of one channel in blocks of ``block_frames`` (last one shorter)."""
    if block_frames < 1:
        raise ValueError("block_frames must be positive")
    with open(path, "rb") as f:
        fmt = _parse_header(f, Path(path).stat().st_size)
        if not 0 <= channel < fmt.channels:
            raise ValueError(f"channel {channel} not in a {fmt.channels}-channel file")
        frame_bytes = fmt.channels * fmt.bits // 8
        f.seek(fmt.data_offset)
        left = fmt.frames
        while left > 0:
            want = min(block_frames, left)
            raw = f.read(want * frame_bytes)
            got = len(raw) // frame_bytes
            if got == 0:
                return
            yield _decode(raw[: got * frame_bytes], fmt, channel)
            left -= got


def analyse_wav(
    path: str | Path,
    interval_s: float = 1.0,
    offset_db: float = 0.0,
    *,
    channel: int = 0,
    third_octaves: bool = False,
) -> Iterator[IntervalLevels]:
    """Levels of a WAV recording, one record per interval (the tail one shorter).

    ``offset_db`` is the calibration offset of the recording chain (see
    ``agent.sound.levels``); without it the levels are dB re full scale.
    """
    fmt = read_format(path)
    meter = SoundLevelMeter(
        fmt.sample_rate, interval_s, offset_db, z_weighting=True, third_octaves=third_octaves
    )
    block = max(1, round(fmt.sample_rate * min(interval_s, 1.0)))
    for samples in iter_blocks(path, block, channel):
        yield from meter.feed(samples)
    yield from meter.flush()
