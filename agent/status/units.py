"""Units and names as people read them: ``ug/m3`` → ``µg/m³``, ``laeq`` → ``LAeq``.

Payloads carry UCUM codes (docs/payload.md) because programs parse them; the status
page and ``lokaalmeten status`` show what a volunteer or an installer reads on a
display. A sound level's weighting is in its quantity name (``laeq``, ``lceq``), not
in the UCUM code ``dB``, so the display unit of a level depends on both.
"""

from __future__ import annotations

import re

DISPLAY_UNITS: dict[str, str] = {
    "ug/m3": "µg/m³",
    "/cm3": "/cm³",
    "/dL": "/0.1 L",
    "um": "µm",
    "Cel": "°C",
    "%": "%",
    "hPa": "hPa",
    "[ppm]": "ppm",
    "dB": "dB",
    "m/s": "m/s",
    "s": "s",
    "ms": "ms",
    "/s": "/s",
    "1": "",
    "MBy": "MB",
    "By": "bytes",
    "{measurement}": "measurements",
    "{person}": "people",
    "{person}/m2": "people/m²",
    "{frame}": "frames",
}
"""Every UCUM code a payload may carry (docs/payload.md) and how it is shown."""

_WEIGHTED_LEVEL = re.compile(r"^l([acz])(f|s)?(eq|min|max|\d\d)$")
"""Sound level quantities: ``laeq``, ``lafmax``, ``la90``, ``lceq``, ``lzmin`` …"""

LABELS: dict[str, str] = {
    "pm1_0": "PM1", "pm2_5": "PM2.5", "pm4_0": "PM4", "pm10": "PM10",
    "pm1_0_cf1": "PM1 (CF=1)", "pm2_5_cf1": "PM2.5 (CF=1)", "pm10_cf1": "PM10 (CF=1)",
    "pm2_5_rh_corrected": "PM2.5, humidity-corrected",
    "pm10_rh_corrected": "PM10, humidity-corrected",
    "nc0_5": "Particles > 0.5 µm", "nc1_0": "Particles > 1 µm", "nc2_5": "Particles > 2.5 µm",
    "nc4_0": "Particles > 4 µm", "nc10": "Particles > 10 µm",
    "typical_particle_size": "Typical particle size",
    "co2": "CO₂", "temperature": "Temperature", "relative_humidity": "Relative humidity",
    "pressure": "Air pressure", "voc_index": "VOC index", "nox_index": "NOx index",
    "wind_speed": "Wind speed", "sound_level": "Sound level",
    "occupancy_mean": "People in view (mean)", "occupancy_max": "People in view (max)",
    "fps": "Frames per second", "frames": "Frames counted",
}


def display_unit(unit: str, quantity: str = "") -> str:
    """The unit as shown: dB becomes dB(A)/dB(C)/dB(Z) after the level's weighting letter."""
    if unit == "dB":
        match = _WEIGHTED_LEVEL.match(quantity)
        return f"dB({match.group(1).upper()})" if match else "dB"
    return DISPLAY_UNITS.get(unit, unit)


def label(quantity: str) -> str:
    """A readable name: ``pm2_5`` → ``PM2.5``, ``la90`` → ``LA90``, ``line_door_in`` → …"""
    if quantity in LABELS:
        return LABELS[quantity]
    level = _WEIGHTED_LEVEL.match(quantity)
    if level:
        return "L" + level.group(1).upper() + (level.group(2) or "").upper() + level.group(3)
    count = re.match(r"^count_(\d+)_?(\d*)um$", quantity)
    if count:
        size = count.group(1) + (f".{count.group(2)}" if count.group(2) else "")
        return f"Particles > {size} µm"
    line = re.match(r"^line_(.+)_(in|out)$", quantity)
    if line:
        return f"Line {line.group(1)}: {line.group(2)}"
    zone = re.match(r"^zone_(.+)_(occupancy|density)_(mean|max)$", quantity)
    if zone:
        return f"Zone {zone.group(1)}: {zone.group(2)} ({zone.group(3)})"
    return quantity.replace("_", " ").capitalize()


def camera_history_rule(quantity: str) -> str | None:
    """How a camera's published figure folds into a 5-minute history bucket (None: kept
    out of the history). Crossings add up; occupancy and density are levels."""
    if re.match(r"^line_.+_(in|out)$", quantity):
        return "sum"
    if re.match(r"^(zone_.+_)?(occupancy|density)_mean$", quantity):
        return "mean"
    if re.match(r"^(zone_.+_)?(occupancy|density)_max$", quantity):
        return "max"
    return None
