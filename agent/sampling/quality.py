"""Per-sample quality control: range checks, calibration and flags.

Kept pure so every rule is tested without threads or clocks.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.profiles import OutOfRange, QuantityProfile
from agent.config.sensors import Calibration
from agent.models import Flags, Quality, Reading


@dataclass(frozen=True, slots=True)
class Checked:
    """A reading that passed control, with the value to aggregate."""

    quantity: str
    value: float
    flags: Flags


def check_reading(reading: Reading, quantity: QuantityProfile, *, warming_up: bool,
                  calibration: Calibration | None) -> Checked | None:
    """Apply the profile's range and the configured calibration; ``None`` means drop.

    The range check applies to the raw value (what the sensor can physically
    report); calibration is applied after, so a correction can never make an
    impossible raw value look valid.
    """
    flags = set(reading.flags)
    if warming_up:
        flags.add(Quality.WARMING_UP)
    value = reading.value
    if not quantity.min <= value <= quantity.max:
        if quantity.out_of_range is OutOfRange.DROP:
            return None
        flags.add(Quality.OUT_OF_RANGE)
    if calibration is not None and (calibration.scale != 1.0 or calibration.offset != 0.0):
        value = value * calibration.scale + calibration.offset
        flags.add(Quality.CALIBRATED)
    return Checked(reading.quantity, value, frozenset(flags))
