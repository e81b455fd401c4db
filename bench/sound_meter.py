"""Benchmark of the sound level meter: speed and frequency response (run on demand).

    python bench/sound_meter.py [--seconds 60] [--rate 48000]

Prints (1) how many times faster than real time one core runs the meter on
mono audio (best of three runs) for several block sizes and options, and (2) the A- and C-weighting
response per third-octave band against the IEC 61672-1 table, the exact
analog curve and the class 1 limits, next to what the plain bilinear design
would give. No assertions: the tests hold the limits.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import signal

from agent.emulators.signals import pink_noise
from agent.sound.meter import SoundLevelMeter
from agent.sound.weighting import (
    F1_HZ,
    F2_HZ,
    F3_HZ,
    F4_HZ,
    STANDARD_TABLE,
    Weighting,
    analog_weighting_db,
    design_sos,
    frequency_response_db,
)


def bilinear_sos(weighting, fs):
    """The textbook design, for comparison: the whole analog filter through bilinear."""
    w = 2 * np.pi
    if weighting is Weighting.A:
        zeros, poles = [0.0] * 4, [-w * F1_HZ] * 2 + [-w * F2_HZ, -w * F3_HZ] + [-w * F4_HZ] * 2
    else:
        zeros, poles = [0.0] * 2, [-w * F1_HZ] * 2 + [-w * F4_HZ] * 2
    sos = signal.zpk2sos(*signal.bilinear_zpk(zeros, poles, 1.0, fs))
    sos[0, :3] /= abs(signal.sosfreqz(sos, [1000.0], fs=fs)[1][0])
    return sos


def speed(seconds, fs):
    x = pink_noise(60.0, seconds, fs, 100.0, seed=1)
    print(f"\n== speed: {seconds:g} s of {fs} Hz mono pink noise, one core ==")
    print(f"{'options':<26}{'block':>9}{'x real time':>14}")
    options = {
        "A + C (default)": {},
        "A + C + Z": {"z_weighting": True},
        "A only": {"c_weighting": False},
        "A + C + 1/3 octaves": {"third_octaves": True},
    }
    for name, kwargs in options.items():
        for block_s in (0.01, 0.1, 1.0):
            block = round(block_s * fs)
            best = float("inf")
            for _ in range(3):  # best of three: the machine may be busy
                meter = SoundLevelMeter(fs, 1.0, 100.0, **kwargs)
                start = time.perf_counter()
                for i in range(0, x.size, block):
                    meter.feed(x[i : i + block])
                meter.flush()
                best = min(best, time.perf_counter() - start)
            print(f"{name:<26}{block_s * 1000:>7.0f}ms{seconds / best:>13.0f}x")


def response(fs, weighting, verbose):
    ours = design_sos(weighting, fs)
    plain = bilinear_sos(weighting, fs)
    if verbose:
        print(f"\n== {weighting.value}-weighting at {fs} Hz ({ours.shape[0]} biquads) ==")
        print(
            f"{'nominal':>8}{'exact Hz':>10}{'table':>7}{'analog':>8}{'ours':>8}"
            f"{'−table':>8}{'−analog':>9}{'class 1':>13}{'margin':>8}{'bilinear−an':>13}"
        )
    worst_table = worst_analog = worst_plain = 0.0
    for row in STANDARD_TABLE:
        f = row.exact_hz
        if f >= fs / 2:
            continue
        table = row.a_db if weighting is Weighting.A else row.c_db
        analog = float(analog_weighting_db(weighting, f))
        digital = float(frequency_response_db(ours, f, fs)[0])
        bilinear = float(frequency_response_db(plain, f, fs)[0])
        upper, lower = row.class1
        dev = digital - table
        margin = min(upper - dev, dev - lower)
        worst_table = max(worst_table, abs(dev))
        worst_analog = max(worst_analog, abs(digital - analog))
        worst_plain = max(worst_plain, abs(bilinear - analog))
        if verbose:
            limits = f"+{upper:.1f}/{lower:.1f}"
            print(
                f"{row.nominal_hz:>8g}{f:>10.1f}{table:>7.1f}{analog:>8.2f}{digital:>8.2f}"
                f"{dev:>+8.3f}{digital - analog:>+9.3f}{limits:>13}{margin:>8.2f}"
                f"{bilinear - analog:>+13.3f}"
            )
    grid = np.geomspace(10.0, min(22400.0, 0.98 * fs / 2), 4000)
    error = frequency_response_db(ours, grid, fs) - analog_weighting_db(weighting, grid)
    dense = np.max(np.abs(error))
    print(
        f"{weighting.value} @ {fs:>6} Hz: worst |ours − table| {worst_table:.3f} dB, "
        f"|ours − analog| {worst_analog:.3f} dB at band centres, {dense:.3f} dB on a dense "
        f"grid to {grid[-1] / 1000:.1f} kHz; bilinear alone {worst_plain:.3f} dB"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=48000)
    args = parser.parse_args()
    speed(args.seconds, args.rate)
    for weighting in (Weighting.A, Weighting.C):
        response(args.rate, weighting, verbose=True)
    print("\n== summary at other sample rates ==")
    for fs in (16000, 32000, 44100, 48000, 96000):
        for weighting in (Weighting.A, Weighting.C):
            response(fs, weighting, verbose=False)


if __name__ == "__main__":
    main()
