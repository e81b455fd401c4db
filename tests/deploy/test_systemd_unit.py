"""The shipped systemd unit: hardening that keeps the sensors reachable, verified by systemd."""

from __future__ import annotations

import shutil
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "lokaalmeten-agent.service"


def service() -> dict[str, str]:
    parser = ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNIT)
    return dict(parser["Service"])


def test_notify_watchdog_restart_and_user() -> None:
    s = service()
    assert s["Type"] == "notify" and s["Restart"] == "always"
    assert int(s["WatchdogSec"]) >= 30
    assert s["User"] == "lokaalmeten"
    assert set(s["SupplementaryGroups"].split()) == {"i2c", "dialout", "video", "audio",
                                                     "lokaalmeten-admin"}
    assert s["RestartPreventExitStatus"] == "2", "a config error must not restart-loop"


def test_reload_checks_the_config_then_signals_the_agent() -> None:
    reload = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
              if line.startswith("ExecReload=")]
    assert reload == ["/opt/lokaalmeten/venv/bin/lokaalmeten check-config "
                      "--config /etc/lokaalmeten/agent.toml", "/bin/kill -HUP $MAINPID"]


def test_hardening_without_hiding_devices() -> None:
    s = service()
    assert s["NoNewPrivileges"] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert s["ReadWritePaths"] == "/var/lib/lokaalmeten"
    assert s["PrivateTmp"] == "yes" and s["ProtectHome"] == "yes"
    assert "PrivateDevices" not in s, "PrivateDevices hides /dev/i2c-*, /dev/tty*, /dev/video*"


def test_cap_setgid_only_for_the_daemon_to_give_up_the_camera() -> None:
    """The daemon drops the camera groups and then every capability at start
    (agent/vision/camera_access.py; tests/privacy/test_camera_access.py runs it so)."""
    s = service()
    assert s["CapabilityBoundingSet"] == "CAP_SETGID"
    assert s["AmbientCapabilities"] == "CAP_SETGID"
    assert s["NoNewPrivileges"] == "yes", "no set-uid program (newgrp) brings a group back"
    # Capabilities belong to threads: numpy's import must not start OpenBLAS's pool first.
    assert "OPENBLAS_NUM_THREADS=1" in s["Environment"].split()


def test_two_malloc_arenas_keep_the_daemons_memory_together() -> None:
    # bench/soak.py measures the daemon with the unit's environment; see operations.md.
    assert "MALLOC_ARENA_MAX=2" in service()["Environment"].split()


def test_a_fixed_mmap_threshold_keeps_frames_out_of_the_heap() -> None:
    # Without it glibc raises the threshold past a frame's size, and the counter's heap grew
    # a frame at a time (bench/soak.py, docs/operations.md).
    assert "MALLOC_MMAP_THRESHOLD_=131072" in service()["Environment"].split()


# A block of 200 bytes allocated and freed by a thread: with glibc's thread cache the freed
# block stays with the thread, counted in use (mallinfo2's uordblks); without it, it is free.
FREED_BLOCK_STAYS_IN_USE = """
import ctypes, threading
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def churn():
    before = libc.mallinfo2().uordblks
    libc.free(libc.malloc(200))
    print(libc.mallinfo2().uordblks - before)
thread = threading.Thread(target=churn)
thread.start()
thread.join()
"""


def test_threads_keep_no_cache_of_freed_blocks() -> None:
    # The daemon's threads each filled a cache of freed blocks over hours, and its memory in
    # use grew with them (bench/soak.py, docs/operations.md). Checked in glibc itself: the
    # unit's environment must switch the cache off in a real process.
    unit_env = dict(item.split("=", 1) for item in service()["Environment"].split())
    held = subprocess.run([sys.executable, "-c", FREED_BLOCK_STAYS_IN_USE], check=True,
                          env=unit_env, capture_output=True, text=True).stdout
    assert int(held) == 0, f"a freed block of 200 bytes still counted in use ({held.strip()} B)"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_system_call_filter_allows_giving_up_and_the_zygote() -> None:
    allowed = subprocess.run(["systemd-analyze", "syscall-filter", service()["SystemCallFilter"]],
                             capture_output=True, text=True, check=True).stdout
    groups = {line.strip() for line in allowed.splitlines()}
    expanded = set(groups)
    for group in (g for g in groups if g.startswith("@")):
        expanded |= {line.strip() for line in subprocess.run(
            ["systemd-analyze", "syscall-filter", group], capture_output=True, text=True,
            check=True).stdout.splitlines()}
    needed = {"setgroups", "capset", "prctl", "pidfd_open", "pidfd_send_signal", "sendmsg",
              "recvmsg", "socketpair", "clone"}
    assert needed <= expanded, needed - expanded


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    # verify insists the binaries exist: point ExecStart at this interpreter's agent.
    text = UNIT.read_text().replace("/opt/lokaalmeten/venv/bin/lokaalmeten",
                                    str(Path(sys.executable).with_name("lokaalmeten")))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if UNIT.name in line]
    assert problems == [], problems


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verify_accepts_the_set_up_units(tmp_path: Path) -> None:
    """The path unit that applies lines and zones proposed on the set-up page, as root."""
    lokaalmeten = str(Path(sys.executable).with_name("lokaalmeten"))
    for name in ("lokaalmeten-agent.service", "lokaalmeten-setup.service",
                 "lokaalmeten-setup.path"):
        text = (UNIT.parent / name).read_text()
        (tmp_path / name).write_text(text.replace("/opt/lokaalmeten/venv/bin/lokaalmeten",
                                                  lokaalmeten))
    result = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "lokaalmeten-setup.path"),
                             str(tmp_path / "lokaalmeten-setup.service")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    problems = [line for line in result.stderr.splitlines() if "lokaalmeten-setup" in line]
    assert problems == [], problems
    parser = ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(tmp_path / "lokaalmeten-setup.path")
    proposal = parser["Path"]["PathExists"]
    assert proposal == "/var/lib/lokaalmeten/setup-proposal.json"
    assert proposal in (tmp_path / "lokaalmeten-setup.service").read_text(), \
        "the service applies the file the path unit watches"
    assert service()["ReadWritePaths"] == str(Path(proposal).parent), \
        "the agent can write where it proposes"
