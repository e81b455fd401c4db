"""``lokaalmeten calibrate``: the microphone's calibration offset from a sound calibrator.

Put a 94 dB (or 114 dB) 1 kHz calibrator on the microphone, then either record
it and pass ``--wav FILE``, or let the command capture ``--seconds`` from a
configured microphone sensor (stop the daemon first: the device is exclusive).
It prints the offset and the TOML line to put in the sensor's options. The
config file is not rewritten: a TOML rewrite would drop its comments.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from agent.bus.audio import AudioSource
from agent.bus.provider import HardwareBuses
from agent.cli._common import EXIT_FAILURE, EXIT_OK, add_config_arguments, load_plan
from agent.errors import BusError, ConfigError
from agent.plan import Plan
from agent.sensors.base import BusKind

SETTLE_S = 0.2
"""Audio dropped after the capture starts (start-up pop), as the driver does."""
NO_AUDIO_S = 3.0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    text = "Measure a sound calibrator's tone and print the microphone's calibration offset."
    p = sub.add_parser("calibrate", help=text, description=text)
    add_config_arguments(p)
    p.add_argument("--reference", type=float, default=94.0, metavar="DB",
                   help="the calibrator's level in dB SPL (default 94)")
    p.add_argument("--tone", type=float, default=1000.0, metavar="HZ",
                   help="the calibrator's frequency (default 1000)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--wav", type=Path, metavar="FILE", help="a recording of the tone")
    source.add_argument("--sensor", help="a microphone sensor id from the config: capture now")
    p.add_argument("--seconds", type=float, default=5.0,
                   help="how long to capture from the sensor (default 5)")
    p.add_argument("--channel", type=int, default=0, help="channel of the WAV file (default 0)")
    p.add_argument("--simulate", action="store_true",
                   help="with --sensor: a simulated calibrator instead of the capture device")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from agent.sound import calibration_offset, measure  # noqa: PLC0415 - scipy when used

    sensor_id, previous = None, None
    if args.wav is not None:
        try:
            samples, rate = _read_wav(args.wav, args.channel)
        except (OSError, ValueError) as exc:
            print(f"error: {args.wav}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    else:
        sensor_id = args.sensor
        source, previous = _open_sensor(load_plan(args.config), args)
        samples, rate = _capture(source, args.seconds), source.sample_rate
    try:
        offset = calibration_offset(samples, rate, args.reference, args.tone)
    except ValueError as exc:
        print(f"error: {exc}; is the calibrator on and the microphone in it?", file=sys.stderr)
        return EXIT_FAILURE
    laeq = measure(samples, rate, interval_s=samples.size / rate, offset_db=offset)[0].laeq
    _report(args, offset, laeq, sensor_id, previous)
    return EXIT_OK


def _report(args: argparse.Namespace, offset: float, laeq: float, sensor_id: str | None,
            previous: float | None) -> None:
    if args.json:
        print(json.dumps({"offset_db": round(offset, 2), "reference_db": args.reference,
                          "tone_hz": args.tone, "laeq_db": round(laeq, 2),
                          "sensor": sensor_id, "previous_offset_db": previous}))
        return
    print(f"calibration offset: {offset:.2f} dB ({args.tone:g} Hz tone at "
          f"{args.reference:g} dB; the recording's LAeq with it: {laeq:.1f} dB)")
    if previous is not None:
        change = round(offset - previous, 2) + 0.0  # no "-0.00"
        print(f"configured now:     {previous:.2f} dB (change {change:+.2f} dB)")
    section = f"[sensors.{sensor_id}.options]" if sensor_id else "[sensors.<id>.options]"
    print(f"\nPut this in the microphone sensor's section of the config:\n\n{section}\n"
          f"calibration_offset_db = {offset:.2f}")


def _read_wav(path: Path, channel: int) -> tuple[NDArray[np.float64], int]:
    from agent.sound.wav import iter_blocks, read_format  # noqa: PLC0415 - scipy when used

    rate = read_format(path).sample_rate
    blocks = list(iter_blocks(path, rate, channel))
    return (np.concatenate(blocks) if blocks else np.zeros(0)), rate


def _open_sensor(the_plan: Plan, args: argparse.Namespace) -> tuple[AudioSource, float]:
    """The configured microphone's source (or a simulated calibrator) and its current offset."""
    sensor = next((s for s in the_plan.sensors if s.sensor_id == args.sensor), None)
    spec_options = the_plan.drivers.get(args.sensor)
    if sensor is None or spec_options is None or spec_options[0].bus is not BusKind.AUDIO:
        known = ", ".join(s.sensor_id for s in the_plan.sensors
                          if the_plan.drivers[s.sensor_id][0].bus is BusKind.AUDIO) or "none"
        raise ConfigError(str(args.config), [("sensors", f"no enabled microphone sensor "
                                              f"{args.sensor!r} (configured: {known})")])
    options: Any = spec_options[1]
    assert sensor.config.device is not None
    if args.simulate:
        from agent.emulators.microphone import steady_tone  # noqa: PLC0415 - simulation only

        source: AudioSource = steady_tone(args.tone, args.reference, options.sample_rate,
                                          block_s=options.block_s)
    else:
        source = HardwareBuses().audio(sensor.config.device, options.sample_rate,
                                       channel=options.channel, block_s=options.block_s)
    return source, float(options.calibration_offset_db)


def _capture(source: AudioSource, seconds: float) -> NDArray[np.float64]:
    """``seconds`` of audio after the settle time; any lost block spoils the recording."""
    rate = source.sample_rate
    skip, want = round(SETTLE_S * rate), round(seconds * rate)
    blocks: list[NDArray[np.float32]] = []
    have = 0
    source.start()
    try:
        overruns = source.overruns
        last = source.clock.monotonic()
        while have < skip + want:
            block = source.read(0.5)
            if block is None:
                if source.clock.monotonic() - last > NO_AUDIO_S:
                    raise BusError(f"no audio from the microphone for {NO_AUDIO_S:g} s")
                continue
            last = source.clock.monotonic()
            blocks.append(block)
            have += block.size
        if source.overruns != overruns:
            raise BusError(f"{source.overruns - overruns} audio block(s) lost while "
                           "capturing; close other programs using the device and retry")
    finally:
        source.stop()
        source.close()
    return np.concatenate(blocks).astype(np.float64)[skip:skip + want]
