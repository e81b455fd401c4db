"""Sound level meter: A/C/Z weighting, Fast/Slow time weighting, LAeq and friends.

Pure DSP over numpy arrays (scipy.signal for the filters): blocks of float
samples (full scale 1.0) go in, one ``IntervalLevels`` per interval comes out.
Capture (microphone, WAV file) stays outside, in the I/O shell; ``wav`` is the
file reader for ``lokaalmeten noise FILE.wav``.

    meter = SoundLevelMeter(48000, interval_s=1.0, calibration_offset_db=120.0)
    for block in blocks:
        for levels in meter.feed(block):
            publish(levels.readings())
"""

from agent.sound.levels import energy_average, exceeded_level, level_db, offset_from_sensitivity
from agent.sound.meter import IntervalLevels, SoundLevelMeter, calibration_offset, measure
from agent.sound.timeweighting import FAST_S, SLOW_S, TimeWeighting
from agent.sound.weighting import Weighting, WeightingFilter, analog_weighting_db, design_sos

__all__ = [
    "FAST_S",
    "SLOW_S",
    "IntervalLevels",
    "SoundLevelMeter",
    "TimeWeighting",
    "Weighting",
    "WeightingFilter",
    "analog_weighting_db",
    "calibration_offset",
    "design_sos",
    "energy_average",
    "exceeded_level",
    "level_db",
    "measure",
    "offset_from_sensitivity",
]
