"""Facts about the box, read from /proc and /sys where they exist (None where not)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

_THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
_THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")


@dataclass(frozen=True)
class SystemFacts:
    """One reading of the host's condition."""

    cpu_temperature_c: float | None
    throttled: int | None
    load_1m: float
    disk_free_mb: float | None
    rss_mb: float | None


def read_system(storage_dir: Path) -> SystemFacts:
    """Collect what is readable; a missing file is not an error on a non-Pi host."""
    return SystemFacts(
        cpu_temperature_c=_read_number(_THERMAL, scale=0.001),
        throttled=_read_throttled(),
        load_1m=os.getloadavg()[0],
        disk_free_mb=_disk_free_mb(storage_dir),
        rss_mb=_rss_mb(),
    )


def _read_number(path: Path, scale: float) -> float | None:
    try:
        return int(path.read_text().strip()) * scale
    except (OSError, ValueError):
        return None


def _read_throttled() -> int | None:
    """Raspberry Pi firmware throttling bits (under-voltage, capped, throttled), hex text."""
    try:
        return int(_THROTTLED.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def _disk_free_mb(directory: Path) -> float | None:
    try:
        return shutil.disk_usage(directory).free / 1e6
    except OSError:
        return None


def _rss_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
