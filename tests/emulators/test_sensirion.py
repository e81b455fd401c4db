"""The chip side shared by the Sensirion-style emulators, and the random walks behind them.

Each emulator's own protocol is tested with its driver in ``tests/sensors``; here is
what they all inherit: word framing, argument checks, the pending reply and its timing,
fault injection and the transaction log.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.crc import sensirion_crc8
from agent.emulators._sensirion import (
    SensirionDevice,
    ascii_words,
    float_words,
    frame_words,
    split_write,
)
from agent.emulators._walk import Walk
from agent.emulators.i2c_bus import Nack


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


class Echo(SensirionDevice):
    """0x0001 answers its argument words back, 0x0003 answers 9; 0x0002 makes the chip
    busy for 1 s."""

    def handlers(self) -> dict:
        return {0x0001: self.reply, 0x0002: lambda _: self.busy_for(1.0, self.clock()),
                0x0003: lambda _: self.reply([9])}


class SlowEcho(Echo):
    read_delay_s = 0.003


class PointerEcho(Echo):
    rereadable = True


def test_words_are_framed_with_their_crc() -> None:
    assert frame_words([0xBEEF, 0x0000]) == bytes.fromhex("BEEF92 000081")
    assert float_words(1.0) == [0x3F80, 0x0000]
    assert ascii_words("AB") == [0x4142, 0x0000]  # NUL-terminated, whole words
    assert ascii_words("ABC", 8) == [0x4142, 0x4300, 0x0000, 0x0000]


@given(st.integers(0, 0xFFFF), st.lists(st.integers(0, 0xFFFF), max_size=4))
def test_a_host_write_splits_into_code_and_words(code: int, words: list[int]) -> None:
    assert split_write(code.to_bytes(2, "big") + frame_words(words)) == (code, words)


@pytest.mark.parametrize("write", ["", "00", "0001 0000", "0001 0000 00", "0001 BEEF 00"])
def test_a_short_ragged_or_miscrc_write_is_nacked(write: str) -> None:
    with pytest.raises(Nack):
        split_write(bytes.fromhex(write))


def test_a_reply_is_read_once_and_the_log_keeps_every_transaction() -> None:
    device = Echo(Clock())
    device.on_write(b"\x00\x01" + frame_words([0x1234]))
    assert device.on_read(3) == bytes([0x12, 0x34, sensirion_crc8(b"\x12\x34")])
    with pytest.raises(Nack):
        device.on_read(3)
    with pytest.raises(Nack):
        device.on_write(b"\x00\x09")  # unknown command
    assert [kind for kind, _ in device.log] == ["w", "r", "r", "w"]
    assert device.log[2] == ("r", b"")
    assert device.writes == [b"\x00\x01" + frame_words([0x1234])]


def test_a_pointer_style_reply_can_be_read_again() -> None:
    device = PointerEcho(Clock())
    device.on_write(b"\x00\x01" + frame_words([7]))
    assert device.on_read(3) == device.on_read(3) == frame_words([7])


def test_a_reply_is_not_readable_before_the_execution_time() -> None:
    clock = Clock()
    device = SlowEcho(clock)
    device.on_write(b"\x00\x01" + frame_words([7]))
    with pytest.raises(Nack):
        device.on_read(3)
    clock.now += 0.003
    assert device.on_read(3) == frame_words([7])


def test_a_busy_chip_refuses_everything_until_done() -> None:
    clock = Clock()
    device = Echo(clock)
    device.on_write(b"\x00\x02")
    with pytest.raises(Nack):
        device.on_write(b"\x00\x01")
    clock.now += 1.0
    device.on_write(b"\x00\x01")


def test_injected_faults() -> None:
    device = Echo(Clock())
    device.nack_next(2)
    for call in (lambda: device.on_write(b"\x00\x01"), lambda: device.on_read(3)):
        with pytest.raises(Nack):
            call()
    device.corrupt_next(command=0x0001)
    device.on_write(b"\x00\x03")
    assert device.on_read(3) == frame_words([9])  # another command's reply is intact
    device.on_write(b"\x00\x01" + frame_words([5]))
    corrupted = device.on_read(3)
    assert corrupted[:2] == b"\x00\x05" and corrupted[2] != sensirion_crc8(b"\x00\x05")
    device.hold_not_ready(1)
    assert device.report_ready(True) is False
    assert device.report_ready(True) is True
    device.not_ready = True
    assert device.report_ready(True) is False


def test_a_pinned_walk_stays_put_and_draws_nothing() -> None:
    rng, untouched = random.Random(1), random.Random(1)
    walk = Walk.unless_pinned(612.5, 480.0, 400.0, 2500.0, 4.0)
    assert [walk.advance(rng) for _ in range(3)] == [612.5] * 3
    assert rng.random() == untouched.random()


@given(st.integers(0, 1000), st.booleans())
def test_a_walk_stays_inside_its_bounds(seed: int, multiplicative: bool) -> None:
    rng = random.Random(seed)
    walk = Walk(8.0, 0.5, 300.0, 0.5, multiplicative=multiplicative)
    assert all(0.5 <= walk.advance(rng) <= 300.0 for _ in range(200))
