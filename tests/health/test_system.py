"""Host facts for the heartbeat, read from the real /proc, /sys and the kernel clock."""

from __future__ import annotations

import ctypes
import subprocess
from pathlib import Path

import pytest

from agent.health import system
from agent.health.system import read_system
from tests.garbage import dropped_array_types


def test_host_facts_are_read_or_left_out(tmp_path: Path) -> None:
    facts = read_system(tmp_path)
    assert facts.clock_synchronized in (True, False)  # Linux always answers adjtimex
    assert facts.disk_free_mb is not None and facts.disk_free_mb > 0
    assert facts.rss_mb is not None and facts.rss_mb > 10
    assert facts.load_1m >= 0


def test_the_clock_state_is_asked_without_starting_a_process_or_loading_libc_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a minute for months: ``ctypes.util.find_library`` forked ``ldconfig -p`` each
    time, and each ``ctypes.CDLL`` left new classes on the heap."""
    system._adjtimex.cache_clear()
    loads: list[object] = []
    real_cdll = ctypes.CDLL

    def counting_cdll(*args: object, **kwargs: object) -> ctypes.CDLL:
        loads.append(args)
        return real_cdll(*args, **kwargs)  # type: ignore[arg-type]

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args}")

    monkeypatch.setattr(ctypes, "CDLL", counting_cdll)
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)
    answers = {read_system(tmp_path).clock_synchronized for _ in range(3)}
    assert answers <= {True, False} and len(answers) == 1
    assert len(loads) == 1, "libc is looked up once"


def test_asking_the_clock_state_leaves_no_ctypes_class_behind(tmp_path: Path) -> None:
    assert dropped_array_types(lambda: read_system(tmp_path)) == 0
