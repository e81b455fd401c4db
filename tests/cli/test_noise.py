"""``lokaalmeten noise`` and ``lokaalmeten calibrate`` on recordings made in the test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.emulators.signals import level_steps, pink_noise, tone
from agent.sensors.microphone import DEFAULT_OFFSET_DB
from tests.wavfile import write_wav

FS = 48000
OFFSET = 120.0  # the recording chain: mean square 1.0 reads 120 dB


@pytest.fixture
def steps_wav(tmp_path: Path) -> Path:
    """2.5 s: 1 s at 70 dB, 1 s at 80 dB, 0.5 s at 60 dB (1 kHz)."""
    signal = level_steps([(70.0, 1.0), (80.0, 1.0), (60.0, 0.5)], FS, offset_db=OFFSET)
    return write_wav(tmp_path / "steps.wav", signal, FS)


@pytest.fixture
def calibrator_wav(tmp_path: Path) -> Path:
    """A 94 dB calibrator recorded with a little background noise."""
    signal = tone(1000, 94.0, 2.0, FS, OFFSET) + pink_noise(60.0, 2.0, FS, OFFSET)
    return write_wav(tmp_path / "calibrator.wav", signal, FS)


def test_noise_prints_one_json_line_per_interval(
        steps_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noise", str(steps_wav), "--interval", "1", "--offset", str(OFFSET),
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["start_s"] for line in lines] == [0.0, 1.0, 2.0]
    assert [line["duration_s"] for line in lines] == [1.0, 1.0, 0.5]
    # The A filter rings a little past the 80 → 60 dB step into the last interval.
    assert [line["laeq"] for line in lines] == pytest.approx([70.0, 80.0, 60.0], abs=0.2)
    for line in lines:
        assert set(line) == {"start_s", "duration_s", "laeq", "lafmax", "lafmin", "la10",
                             "la50", "la90", "lceq", "lzeq", "clipped_samples"}
        assert line["lafmin"] <= line["la90"] <= line["la50"] <= line["la10"] <= line["lafmax"]
        assert line["clipped_samples"] == 0
    assert lines[0]["lceq"] == pytest.approx(70.0, abs=0.1)


def test_noise_interval_option_sets_the_interval_length(
        steps_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noise", str(steps_wav), "--interval", "0.5", "--offset", "120",
                 "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 5
    assert lines[2]["laeq"] == pytest.approx(80.0, abs=0.1)


def test_noise_table_and_total_without_json(
        steps_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noise", str(steps_wav), "--offset", "120"]) == 0
    out = capsys.readouterr()
    rows = out.out.splitlines()
    assert rows[0].split() == ["start", "s", "LAeq", "LAFmax", "LAFmin", "LA10", "LA50",
                               "LA90", "LCeq", "LZeq"]
    assert rows[1].split()[:2] == ["0.00", "70.0"]
    total = 10 * np.log10((1e7 + 1e8 + 0.5e6) / 2.5)
    assert rows[-1] == f"LAeq over 2.5 s: {total:.1f} dB"
    assert "uncalibrated" not in out.err


def test_noise_without_offset_says_the_levels_are_uncalibrated(
        steps_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["noise", str(steps_wav), "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out.splitlines()[0])["laeq"] == pytest.approx(-50.0, abs=0.1)
    assert "dB re full scale" in out.err


def test_noise_reports_clipping(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = write_wav(tmp_path / "loud.wav", np.clip(2 * tone(1000, 0.0, 1.0, FS), -1, 1), FS)
    assert main(["noise", str(wav), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clipped_samples"] > 1000


@pytest.mark.parametrize("content", [None, b"not a wav file"])
def test_noise_on_a_bad_file_fails_cleanly(tmp_path: Path, content: bytes | None,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    assert main(["noise", str(path)]) == 1
    assert "error:" in capsys.readouterr().err


def test_calibrate_from_a_recording_finds_the_chains_offset(
        calibrator_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--reference", "94", "--wav", str(calibrator_wav),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["offset_db"] == pytest.approx(OFFSET, abs=0.05)
    assert result["laeq_db"] == pytest.approx(94.0, abs=0.1)
    assert result["sensor"] is None


def test_calibrated_offset_makes_noise_read_the_calibrator_level(
        calibrator_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--wav", str(calibrator_wav)]) == 0
    out = capsys.readouterr().out
    assert "calibration offset: 120.0" in out
    line = next(x for x in out.splitlines() if x.startswith("calibration_offset_db = "))
    offset = line.split("= ")[1]
    assert main(["noise", str(calibrator_wav), "--offset", offset, "--json"]) == 0
    laeq = [json.loads(x)["laeq"] for x in capsys.readouterr().out.splitlines()]
    assert laeq == pytest.approx([94.0, 94.0], abs=0.1)


def test_calibrate_at_114_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = write_wav(tmp_path / "cal114.wav", tone(1000, 114.0, 1.0, FS, OFFSET), FS)
    assert main(["calibrate", "--reference", "114", "--wav", str(wav), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["offset_db"] == pytest.approx(OFFSET, abs=0.05)


def test_calibrate_refuses_a_recording_without_the_tone(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = write_wav(tmp_path / "street.wav", pink_noise(70.0, 1.0, FS, OFFSET), FS)
    assert main(["calibrate", "--wav", str(wav)]) == 1
    assert "no dominant 1000 Hz tone" in capsys.readouterr().err


def test_calibrate_captures_from_a_configured_microphone(
        tmp_path: Path, calibrator_wav: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text('device_id = "x"\n[sensors.mic]\nmodel = "microphone"\n'
                      f'device = "wav:{calibrator_wav}"\n'
                      "[sensors.mic.options]\ncalibration_offset_db = 119.5\n")
    assert main(["calibrate", "--config", str(config), "--sensor", "mic",
                 "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "calibration offset: 120.0" in out
    assert "configured now:     119.50 dB (change +0.5" in out
    assert "[sensors.mic.options]\ncalibration_offset_db = 120.0" in out


def test_calibrate_with_a_simulated_calibrator_gives_the_default_offset(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text('device_id = "x"\n[sensors.mic]\nmodel = "microphone"\n'
                      'device = "hw:1,0"\n')
    assert main(["calibrate", "--config", str(config), "--sensor", "mic", "--simulate",
                 "--seconds", "0.4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["offset_db"] == pytest.approx(DEFAULT_OFFSET_DB, abs=0.05)
    assert result["previous_offset_db"] == pytest.approx(DEFAULT_OFFSET_DB)


def test_calibrate_names_only_microphones(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "box.toml"
    config.write_text('device_id = "x"\n[sensors.rh]\nmodel = "sht3x"\n'
                      '[sensors.mic]\nmodel = "microphone"\ndevice = "default"\n')
    assert main(["calibrate", "--config", str(config), "--sensor", "rh"]) == 2
    assert "no enabled microphone sensor 'rh' (configured: mic)" in capsys.readouterr().err
