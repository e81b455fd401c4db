"""Emulators' transaction records stay bounded however long `simulate` runs."""

from __future__ import annotations

import pytest

from agent.emulators._log import KEEP, BoundedLog
from agent.emulators.sht3x import Sht3xDevice


def test_a_bounded_log_is_a_list_until_it_holds_twice_keep_entries():
    log: BoundedLog[int] = BoundedLog(keep=3)
    for k in range(5):
        log.append(k)
    assert log == [0, 1, 2, 3, 4] and log[-1] == 4
    log.append(5)  # six = 2 × keep: the oldest three go
    assert log == [3, 4, 5]
    for k in range(6, 1000):
        log.append(k)
        assert len(log) < 6
    assert log[-1] == 999


def test_keep_must_be_positive():
    with pytest.raises(ValueError, match="keep"):
        BoundedLog(keep=0)


def test_an_emulator_measuring_for_weeks_keeps_only_its_latest_transactions():
    """An SHT3x read every second for ~3 hours: a few thousand commands, a bounded record."""
    now = [0.0]
    chip = Sht3xDevice(clock=lambda: now[0])
    for _ in range(10_000):
        chip.on_write(b"\x24\x00")  # single shot, high repeatability, no clock stretching
        now[0] += 1.0
        chip.on_read(6)
    assert len(chip.commands) < 2 * KEEP and chip.commands[-1] == 0x2400
    assert len(chip.log) < 2 * KEEP and chip.log[-1][0] == "r"
    assert len(chip.writes) < 2 * KEEP
