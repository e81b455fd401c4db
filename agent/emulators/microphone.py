"""A simulated street microphone: generated street noise delivered like a sound card.

The "device" of an audio sensor is the sound arriving at the capsule, so the
emulator is a signal generator behind a :class:`~agent.bus.audio.PacedSource`:
blocks arrive at real-time pace, and a consumer that falls behind loses
blocks that the source counts as overruns, as PortAudio would. Use
``inject_overrun`` on the returned source to lose blocks on purpose.

Levels are scaled for the driver's default calibration offset, so an
uncalibrated simulated box reads plausible street levels (≈ 48 dB background,
vehicles peaking around 70 dB).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from agent.bus.audio import DEFAULT_BLOCK_S, PacedSource
from agent.emulators import register
from agent.emulators.signals import StreetNoise

MEMS_OFFSET_DB = 94.0 + 26.0 - 10 * math.log10(0.5)
"""Offset of a −26 dBFS microphone (agent.sound.offset_from_sensitivity(−26)):
the microphone driver's default, repeated here so simulation needs no scipy."""


@register("microphone")
def street_microphone(sample_rate: int = 48000, *, block_s: float = DEFAULT_BLOCK_S,
                      background_db: float = 48.0, vehicle_db: float = 70.0,
                      vehicles_per_minute: float = 6.0, seed: int = 1,
                      offset_db: float = MEMS_OFFSET_DB) -> PacedSource:
    """Endless street noise at real-time pace (see ``StreetNoise`` for the model)."""
    noise = StreetNoise(sample_rate, offset_db, background_db=background_db,
                        vehicle_db=vehicle_db, vehicles_per_minute=vehicles_per_minute,
                        seed=seed)
    return PacedSource(noise.read, sample_rate, block_s=block_s, name="simulated street")


def steady_tone(frequency_hz: float, level_db: float, sample_rate: int = 48000, *,
                offset_db: float = MEMS_OFFSET_DB,
                block_s: float = DEFAULT_BLOCK_S) -> PacedSource:
    """An endless sine reading ``level_db`` (a sound calibrator on the microphone)."""
    amplitude = math.sqrt(2) * 10 ** ((level_db - offset_db) / 20)
    step = 2 * math.pi * frequency_hz / sample_rate
    position = 0

    def produce(frames: int) -> NDArray[np.float64]:
        nonlocal position
        phase = (position + np.arange(frames)) * step
        position += frames
        return amplitude * np.sin(phase)

    return PacedSource(produce, sample_rate, block_s=block_s,
                       name=f"simulated {frequency_hz:g} Hz calibrator")
