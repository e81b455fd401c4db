"""WAV reading: PCM 8/16/24/32 bit, float, extensible headers; analyse_wav."""

import struct
import wave

import numpy as np
import pytest

from agent.emulators.signals import tone
from agent.sound.wav import analyse_wav, iter_blocks, read_format

FS = 48000


def _pcm_bytes(x, bits):
    """Quantise floats (full scale 1.0) to little-endian PCM bytes."""
    if bits == 8:
        return np.clip(np.round(x * 128 + 128), 0, 255).astype(np.uint8).tobytes()
    full = 2 ** (bits - 1)
    ints = np.clip(np.round(x * full), -full, full - 1).astype(np.int64)
    if bits == 24:
        return b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    return ints.astype(f"<i{bits // 8}").tobytes()


def _write_with_wave(path, x, bits, channels=1):
    """The stdlib writer: plain PCM headers."""
    frames = np.repeat(x[:, None], channels, axis=1)
    if channels > 1:
        frames[:, 1:] = 0.0  # only channel 0 carries the signal
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(bits // 8)
        w.setframerate(FS)
        w.writeframes(_pcm_bytes(frames.ravel(), bits))


def _write_riff(path, fmt_body, data, extra_chunk=True):
    chunks = b"fmt " + struct.pack("<I", len(fmt_body)) + fmt_body
    if extra_chunk:  # an odd-sized LIST chunk, padded, before the data
        chunks += b"LIST" + struct.pack("<I", 3) + b"abc\x00"
    chunks += b"data" + struct.pack("<I", len(data)) + data
    path.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


@pytest.mark.parametrize(("bits", "lsb"), [(8, 2**-7), (16, 2**-15), (24, 2**-23), (32, 2**-31)])
def test_pcm_round_trip_through_the_stdlib_writer(tmp_path, bits, lsb):
    x = np.concatenate([tone(1000.0, -6.0, 0.1, FS), [-1.0, 0.0, 1 - lsb, -lsb]])
    path = tmp_path / f"pcm{bits}.wav"
    _write_with_wave(path, x, bits)
    fmt = read_format(path)
    assert (fmt.sample_rate, fmt.channels, fmt.bits, fmt.is_float) == (FS, 1, bits, False)
    assert fmt.frames == x.size and fmt.duration_s == pytest.approx(x.size / FS)
    y = np.concatenate(list(iter_blocks(path, block_frames=777)))
    np.testing.assert_allclose(y, x, rtol=0, atol=lsb / 2 + 1e-12)
    assert y[-4:].tolist() == pytest.approx([-1.0, 0.0, 1 - lsb, -lsb], abs=1e-12)


def test_stereo_takes_the_requested_channel(tmp_path):
    x = tone(440.0, -10.0, 0.05, FS)
    path = tmp_path / "stereo.wav"
    _write_with_wave(path, x, 16, channels=2)
    np.testing.assert_allclose(np.concatenate(list(iter_blocks(path))), x, atol=2**-15)
    assert np.all(np.concatenate(list(iter_blocks(path, channel=1))) == 0.0)
    with pytest.raises(ValueError, match="channel"):
        next(iter_blocks(path, channel=2))


@pytest.mark.parametrize("bits", [32, 64])
def test_ieee_float_files(tmp_path, bits):
    x = tone(1000.0, -3.0, 0.05, FS)
    fmt = struct.pack("<HHIIHH", 3, 1, FS, FS * bits // 8, bits // 8, bits)
    path = tmp_path / "float.wav"
    _write_riff(path, fmt, x.astype(f"<f{bits // 8}").tobytes())
    assert read_format(path).is_float
    np.testing.assert_allclose(np.concatenate(list(iter_blocks(path))), x, atol=1e-7)


def test_extensible_24_bit_in_a_32_bit_container(tmp_path):
    # WAVE_FORMAT_EXTENSIBLE, 2 channels, 32-bit container holding 24 valid
    # bits, sub-format KSDATAFORMAT_SUBTYPE_PCM: what many recorders write and
    # what Python 3.11's wave module refuses.
    guid = struct.pack("<IHH8s", 1, 0x0000, 0x0010, bytes.fromhex("800000aa00389b71"))
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 2, FS, FS * 8, 8, 32, 22, 24, 3) + guid
    x = tone(1000.0, -6.0, 0.05, FS)
    ints = (np.round(x * 2**23).astype(np.int64) << 8).astype("<i4")
    frames = np.stack([ints, np.zeros_like(ints)], axis=1)
    path = tmp_path / "ext.wav"
    _write_riff(path, fmt, frames.tobytes())
    assert read_format(path).channels == 2
    np.testing.assert_allclose(np.concatenate(list(iter_blocks(path))), x, atol=2**-23)


def test_open_ended_data_size_reads_to_the_end(tmp_path):
    x = tone(1000.0, -6.0, 0.01, FS)
    path = tmp_path / "stream.wav"
    _write_riff(path, struct.pack("<HHIIHH", 1, 1, FS, FS * 2, 2, 16), _pcm_bytes(x, 16))
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data") + 4
    raw[data_at : data_at + 4] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(raw))
    assert read_format(path).frames == x.size


def test_rejects_what_it_cannot_read(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFX....WAVE")
    with pytest.raises(ValueError, match="RIFF"):
        read_format(bad)
    alaw = tmp_path / "alaw.wav"
    _write_riff(alaw, struct.pack("<HHIIHH", 6, 1, 8000, 8000, 1, 8), b"\x00" * 10)
    with pytest.raises(ValueError, match="unsupported"):
        read_format(alaw)
    nodata = tmp_path / "nodata.wav"
    nodata.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"WAVE")
    with pytest.raises(ValueError, match="no data"):
        read_format(nodata)


def test_analyse_wav_gives_calibrated_levels(tmp_path):
    offset = 120.0
    x = np.concatenate([tone(1000.0, 70.0, 1.5, FS, offset), tone(1000.0, 80.0, 1.0, FS, offset)])
    path = tmp_path / "street.wav"
    _write_with_wave(path, x, 24)
    out = list(analyse_wav(path, interval_s=1.0, offset_db=offset))
    assert [r.duration_s for r in out] == pytest.approx([1.0, 1.0, 0.5])
    assert out[0].laeq == pytest.approx(70.0, abs=0.01)
    assert out[2].laeq == pytest.approx(80.0, abs=0.01)
    assert out[0].lzeq == pytest.approx(70.0, abs=0.01)
