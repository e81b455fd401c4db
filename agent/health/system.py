"""Facts about the box, read from /proc and /sys where they exist (None where not)."""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

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
    clock_synchronized: bool | None
    """Whether the kernel considers the wall clock NTP-synchronised (None: unknown)."""


def read_system(storage_dir: Path) -> SystemFacts:
    """Collect what is readable; a missing file is not an error on a non-Pi host."""
    return SystemFacts(
        cpu_temperature_c=_read_number(_THERMAL, scale=0.001),
        throttled=_read_throttled(),
        load_1m=os.getloadavg()[0],
        disk_free_mb=_disk_free_mb(storage_dir),
        rss_mb=_rss_mb(),
        clock_synchronized=_clock_synchronized(),
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


_TIME_ERROR = 5
"""adjtimex() return value meaning "clock not synchronised" (see adjtimex(2))."""
_TIMEX = ctypes.c_char * 512
"""Room for struct timex (208 bytes on 64-bit Linux); modes = 0 only reads. The type is
held here: ctypes caches array types by weak reference only, so ``create_string_buffer``
built a new class (a cycle of several kB) at every heartbeat for the collector to free."""


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    """libc's adjtimex, looked up once: ``ctypes.util.find_library`` runs ``ldconfig -p``
    in a subprocess, and every ``CDLL`` makes new function-pointer classes, which at one
    heartbeat a minute was a fork and a few kB more on the heap every time."""
    try:
        function = ctypes.CDLL(None, use_errno=True).adjtimex  # the process's own libc
    except (OSError, AttributeError):
        return None
    return cast(Callable[[ctypes.Array[ctypes.c_char]], int], function)


def _clock_synchronized() -> bool | None:
    """Ask the kernel, as ``timedatectl`` does: boxes without an RTC boot with a stale
    clock, and time stamps made before NTP syncs are wrong by that much."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    state = adjtimex(_TIMEX())
    return None if state < 0 else state != _TIME_ERROR


_CPUINFO = Path("/proc/cpuinfo")
_DEVICETREE_SERIAL = Path("/sys/firmware/devicetree/base/serial-number")


def cpu_serial(cpuinfo: Path = _CPUINFO, devicetree: Path = _DEVICETREE_SERIAL) -> str | None:
    """The Raspberry Pi's board serial (e.g. ``10000000a3b2c1d0``), None elsewhere.

    It names the box to services that want a stable hardware id (Sensor.Community's
    ``raspi-<serial>``). /proc/cpuinfo has a ``Serial`` line on Raspberry Pi kernels;
    the device tree holds the same string (NUL-terminated) where cpuinfo does not.
    """
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Serial" and value.strip().strip("0"):
                return value.strip().lower()
    except OSError:
        pass
    try:
        serial = devicetree.read_bytes().rstrip(b"\0").decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return serial.lower() if serial.strip("0") else None
