"""Plantower PMS5003 / PMS7003 / PMSA003: wire vectors, emulator and driver end to end."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.serial import SerialLink, open_serial
from agent.config.profiles import load_profile
from agent.emulators import registry as emulator_registry
from agent.emulators.pms5003 import PmsDevice, PmsValues, build_ack, build_frame
from agent.emulators.serial_pty import Fault, PtySerialEmulator
from agent.errors import BusError, BusTimeout, CrcError, FrameError, SensorError
from agent.sensors import registry as driver_registry
from agent.sensors.pms5003 import (
    QUANTITIES,
    Pms5003,
    PmsFrame,
    PmsOptions,
    encode_command,
    encode_frame,
    parse_ack,
    parse_frame,
)
from tests.clock import FakeClock
from tests.garbage import blocks_kept
from tests.memory_serial import MemoryLine
from tests.sensors.rigs import crc_error_of

PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"
MODELS = ("pms5003", "pms7003", "pmsa003")

# avaldebe/PyPMS tests/sensor/test_sensor.py, "PMSx003 good data" (a real frame)
PYPMS_GOOD = bytes.fromhex("424D001C0005000D00160005000D001602FD00FC001D000F00060006970003C5")
# sensor-protocols.md §2, computed frame
COMPUTED = bytes.fromhex("424D001C000A0014001E0008000F001905DC01C20078000C00030001970003DA")
# PyPMS tests/captured_data/PMSx003.hexdump, first line (a real capture)
CAPTURED = bytes.fromhex("424d001c00000008000800000008000800d20046002d001e00000000970002c5")
# PyPMS docs: a PMS3003 frame (length 20, 24 bytes)
PMS3003_FRAME = bytes.fromhex("424d00140051006A007700350046004F33D20F28003F041A")

PINNED = PmsValues(12, 20, 31, 10, 18, 27, 2100, 640, 110, 20, 6, 2)
PINNED_READINGS = [(name, float(value)) for name, value in zip(QUANTITIES, PINNED.words(),
                                                                 strict=True)]


# -- pure encode/parse -----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "words"), [
    (PYPMS_GOOD, (5, 13, 22, 5, 13, 22, 765, 252, 29, 15, 6, 6)),
    (COMPUTED, (10, 20, 30, 8, 15, 25, 1500, 450, 120, 12, 3, 1)),
    (CAPTURED, (0, 8, 8, 0, 8, 8, 210, 70, 45, 30, 0, 0)),
])
def test_reference_frames_decode_and_encode_byte_for_byte(raw, words):
    frame = parse_frame(raw)
    assert frame == PmsFrame(*words, version=0x97, error_code=0)
    assert encode_frame(frame) == raw


@pytest.mark.parametrize(("command", "data", "wire"), [
    (0xE2, 0x00, "42 4D E2 00 00 01 71"),   # passive read
    (0xE1, 0x00, "42 4D E1 00 00 01 70"),   # set passive mode
    (0xE1, 0x01, "42 4D E1 00 01 01 71"),   # set active mode
    (0xE4, 0x00, "42 4D E4 00 00 01 73"),   # sleep
    (0xE4, 0x01, "42 4D E4 00 01 01 74"),   # wake
])
def test_commands_encode_as_in_the_table(command, data, wire):
    assert encode_command(command, data) == bytes.fromhex(wire)


ACKS = [  # (command, DATAL, acknowledgement on the wire)
    (0xE1, 0x00, "42 4D 00 04 E1 00 01 74"),
    (0xE1, 0x01, "42 4D 00 04 E1 01 01 75"),
    (0xE4, 0x00, "42 4D 00 04 E4 00 01 77"),
]


@pytest.mark.parametrize(("command", "data", "wire"), ACKS)
def test_acknowledgements_parse_and_emulator_sends_them(command, data, wire):
    assert parse_ack(bytes.fromhex(wire)) == (command, data)
    assert PmsDevice().receive(encode_command(command, data)) == [bytes.fromhex(wire)]


def test_bad_checksum_raises_crc_error_with_evidence():
    error = crc_error_of(parse_frame, PYPMS_GOOD[:-1] + b"\xc6")
    assert (error.expected, error.received) == (0x03C5, 0x03C6)


@pytest.mark.parametrize("raw", [
    PYPMS_GOOD[:31],                          # short
    b"\x43" + PYPMS_GOOD[1:],                 # wrong start character
    PMS3003_FRAME,                            # 24-byte PMS3003 frame, length 20
    PYPMS_GOOD[:3] + b"\x1d" + PYPMS_GOOD[4:],  # wrong length field
])
def test_malformed_frames_raise_frame_error(raw):
    with pytest.raises(FrameError) as info:
        parse_frame(raw)
    assert info.value.raw == raw


words = st.integers(min_value=0, max_value=0xFFFF)
octets = st.integers(min_value=0, max_value=0xFF)


@given(st.lists(words, min_size=12, max_size=12), octets, octets)
def test_frame_round_trip_over_full_16_bit_range(data, version, error_code):
    frame = PmsFrame(*data, version=version, error_code=error_code)
    assert parse_frame(encode_frame(frame)) == frame


def test_a_frame_read_and_sent_keeps_no_memory():
    """Every 5 s for months, on both sides of the wire."""
    values = PmsValues(*range(1, 13))
    raw = build_frame(values)
    read = blocks_kept(lambda: parse_frame(raw).data_words(), 3000)
    sent = blocks_kept(lambda: build_frame(values), 3000)
    assert read < 300 and sent < 300, f"blocks kept after 3000 frames: {read} read, {sent} sent"


@given(octets, words)
def test_command_layout_and_checksum_over_full_range(command, data):
    wire = encode_command(command, data)
    assert wire[:3] == bytes([0x42, 0x4D, command])
    assert int.from_bytes(wire[3:5], "big") == data
    assert int.from_bytes(wire[5:7], "big") == sum(wire[:5])


# -- emulator on its own ---------------------------------------------------------------

def test_emulator_wake_has_no_answer_and_corrupt_breaks_checksum():
    device = PmsDevice()
    assert device.receive(encode_command(0xE4, 1)) == []
    with pytest.raises(CrcError):
        parse_frame(device.corrupt(device.frame()))


def test_emulator_ignores_command_with_bad_checksum():
    device = PmsDevice()
    bad = encode_command(0xE1, 0)[:-1] + b"\x71"
    assert device.receive(bad) == []
    assert device.mode == "active"
    assert device.commands_ignored == 1
    assert device.accepted == []


def test_emulator_reassembles_split_commands_after_noise():
    device = PmsDevice(pinned=PINNED)
    device.receive(encode_command(0xE1, 0))
    command = encode_command(0xE2)
    assert device.receive(b"\x00\xff\x42" + command[:3]) == []
    replies = device.receive(command[3:])
    assert [parse_frame(reply).data_words() for reply in replies] == [PINNED.words()]


def test_emulator_active_mode_timing_and_passive_silence():
    device = PmsDevice(period_s=2.3)
    assert device.poll(100.0) == []           # schedules the first frame
    assert device.poll(102.0) == []
    assert len(device.poll(102.4)) == 1
    assert device.poll(104.0) == []
    assert len(device.poll(104.8)) == 1
    device.receive(encode_command(0xE1, 0))
    assert device.poll(200.0) == []
    assert device.receive(encode_command(0xE2)) != []


def test_sleeping_emulator_only_honours_wake():
    device = PmsDevice(period_s=1.0)
    device.receive(encode_command(0xE4, 0))
    for command in (encode_command(0xE2), encode_command(0xE1, 0), encode_command(0xE4, 0)):
        assert device.receive(command) == []
    assert device.poll(0.0) == device.poll(50.0) == []
    assert device.mode == "active" and device.asleep
    assert device.receive(encode_command(0xE4, 1)) == []
    assert not device.asleep
    device.poll(60.0)
    assert len(device.poll(61.0)) == 1


def test_emulator_values_are_consistent_and_walk_slowly():
    device = PmsDevice(seed=7)
    frames = [parse_frame(device.frame()) for _ in range(200)]
    for frame in frames:
        assert frame.pm1_0 <= frame.pm2_5 <= frame.pm10
        assert frame.pm1_0_cf1 <= frame.pm2_5_cf1 <= frame.pm10_cf1
        counts = frame.data_words()[6:]
        assert list(counts) == sorted(counts, reverse=True)
    assert len({frame.pm2_5 for frame in frames}) > 1
    for before, after in itertools.pairwise(frames):
        assert abs(after.count_0_3um - before.count_0_3um) <= 0.2 * before.count_0_3um
    twin = PmsDevice(seed=7)
    assert [parse_frame(twin.frame()) for _ in range(20)] == frames[:20]   # seeded


# -- registries and profiles -------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
def test_model_is_registered_with_matching_profile(model):
    spec = driver_registry()[model]
    assert spec.driver_type is Pms5003
    assert spec.options_type is PmsOptions
    profile = load_profile(PROFILES / f"{model}.toml")
    assert tuple(q.name for q in profile.quantities) == Pms5003.quantities
    assert profile.baudrate == 9600
    assert profile.quantity("pm2_5").sensor_community == "P2"
    assert profile.quantity("count_0_3um").unit == "/dL"
    assert isinstance(emulator_registry()[model].factory(), PmsDevice)
    assert ("10 pins" in profile.notes) == (model != "pms5003")   # connectors differ


def test_options_and_commands_validate():
    with pytest.raises(ValueError, match="out of range"):
        encode_command(0xE1, 0x10000)
    with pytest.raises(ValueError, match="mode"):
        PmsOptions(mode="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reply_timeout_s"):
        PmsOptions(reply_timeout_s=0)


# -- driver on a line: in memory on a fake clock, and (slow) a real pty -------------------

@dataclass
class Rig:
    device: PmsDevice
    emulator: PtySerialEmulator | MemoryLine
    link: SerialLink

    def driver(self, mode: str = "passive", timeout_s: float = 0.5) -> Pms5003:
        return Pms5003(self.link, PmsOptions(mode=mode, reply_timeout_s=timeout_s))  # type: ignore[arg-type]


@pytest.fixture
def rig(tmp_path: Path, line: str, clock: FakeClock) -> Iterator[Rig]:
    device = PmsDevice(period_s=0.1, pinned=PINNED)
    if line == "memory":
        on_line = MemoryLine(device, clock)
        yield Rig(device, on_line, on_line.open(9600, 0.05))
        return
    with PtySerialEmulator(device, link_dir=tmp_path) as emulator:
        link = open_serial(emulator.port, 9600, 0.05)
        try:
            yield Rig(device, emulator, link)
        finally:
            link.close()


def readings(driver: Pms5003) -> list[tuple[str, float]]:
    return [(reading.quantity, reading.value) for reading in driver.read()]


def test_passive_mode_end_to_end(rig):
    driver = rig.driver("passive")
    driver.start()   # the emulator powers up in active mode and is streaming meanwhile
    assert rig.device.mode == "passive"
    assert readings(driver) == PINNED_READINGS
    assert readings(driver) == PINNED_READINGS
    assert rig.device.accepted == [encode_command(0xE4, 1), encode_command(0xE1, 0),
                                   encode_command(0xE2), encode_command(0xE2)]
    assert driver.identify() == {"firmware": "0x97"}
    assert driver.frames_rejected == 0


def test_active_mode_end_to_end(rig):
    driver = rig.driver("active")
    driver.start()
    assert rig.device.mode == "active"
    sent = rig.emulator.frames_sent
    assert readings(driver) == PINNED_READINGS
    assert readings(driver) == PINNED_READINGS
    assert rig.emulator.frames_sent >= sent + 2   # each read waited for a new frame
    assert encode_command(0xE2) not in rig.device.accepted


def test_active_to_passive_and_back(rig):
    passive = rig.driver("passive")
    passive.start()
    active = rig.driver("active")
    active.reset()
    assert rig.device.mode == "active"
    assert readings(active) == PINNED_READINGS


@pytest.mark.parametrize("case", [  # mode, fault, error, frames rejected, evidence bytes
    ("passive", Fault.BAD_CHECKSUM, CrcError, 1, 32),
    ("active", Fault.BAD_CHECKSUM, CrcError, 1, 32),
    ("passive", Fault.TRUNCATED, FrameError, 1, 16),
    ("passive", Fault.SILENCE, BusTimeout, 0, 0),
])
def test_fault_raises_then_next_read_recovers(rig, case):
    mode, fault, error, rejected, raw_size = case
    driver = rig.driver(mode, timeout_s=0.3)
    driver.start()
    rig.emulator.inject(fault)
    with pytest.raises(error) as info:
        driver.read()
    assert len(info.value.raw) == raw_size
    assert driver.frames_rejected == rejected
    assert readings(driver) == PINNED_READINGS


def test_garbage_before_the_frame_is_skipped(rig):
    driver = rig.driver()
    driver.start()
    rig.emulator.inject(Fault.GARBAGE)
    assert readings(driver) == PINNED_READINGS
    assert driver.frames_rejected == 0
    assert driver.bytes_discarded > 0, "the noise is counted, though every frame got through"


def test_error_code_in_data13_raises_sensor_error(rig):
    driver = rig.driver()
    driver.start()
    rig.device.error_code = 0x02
    with pytest.raises(SensorError, match="0x02") as info:
        driver.read()
    assert not isinstance(info.value, BusError)
    assert driver.frames_rejected == 0


def test_sleeping_sensor_sends_nothing_until_woken(rig, pause):
    driver = rig.driver("active")
    driver.start()
    driver.sleep()
    assert rig.device.asleep
    pause(0.15)
    rig.link.discard_input()
    pause(0.3)                                    # three active periods
    rig.link.write(encode_command(0xE2))          # ignored while asleep
    assert rig.link.read_some(64) == b""
    with pytest.raises(BusTimeout):
        driver.read()
    driver.wake()
    assert readings(driver) == PINNED_READINGS     # frames resumed
    assert not rig.device.asleep
    driver.stop()
    assert rig.device.asleep
    driver.stop()                                  # already asleep: no second command
    assert rig.device.accepted.count(encode_command(0xE4, 0)) == 2


def test_passive_sleep_and_wake(rig):
    driver = rig.driver("passive", timeout_s=0.3)
    driver.start()
    driver.sleep()
    with pytest.raises(BusTimeout):
        driver.read()
    driver.wake()
    assert readings(driver) == PINNED_READINGS


@pytest.mark.parametrize("line", ["pty"], indirect=True)
def test_vanish_then_reopen_recovers(rig):
    driver = rig.driver(timeout_s=0.3)
    driver.start()
    assert isinstance(rig.emulator, PtySerialEmulator)
    rig.emulator.vanish()
    with pytest.raises(BusError):
        driver.read()
    rig.emulator.reappear()
    rig.link.close()
    rig.link = open_serial(rig.emulator.port, 9600, 0.05)
    fresh = rig.driver(timeout_s=0.5)
    fresh.start()
    assert readings(fresh) == PINNED_READINGS


# -- resync on a scripted line -----------------------------------------------------------

class ScriptedLink:
    """A SerialLink stand-in that answers each passive read with the next scripted bytes."""

    name = "scripted"

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.buffer = bytearray()
        self.clock = FakeClock()

    def write(self, data: bytes) -> None:
        if data[2] == 0xE2:
            self.buffer += self.replies.pop(0)
        elif data[2] in (0xE1, 0xE4) and data[4] == 0:
            self.buffer += build_ack(data[2], data[4])

    def read_some(self, length: int) -> bytes:
        out = bytes(self.buffer[:length])
        del self.buffer[:length]
        return out

    def discard_input(self) -> None:
        self.buffer.clear()


def scripted(replies: list[bytes]) -> Pms5003:
    driver = Pms5003(ScriptedLink(replies), PmsOptions(reply_timeout_s=0.05))  # type: ignore[arg-type]
    driver.start()
    return driver


def test_resync_skips_false_headers_and_stray_acks():
    noisy = b"\x42\x4d" + COMPUTED   # a false header whose "length" is the real header
    driver = scripted([noisy, build_ack(0xE1, 0) + b"\x00\x42" + COMPUTED])
    assert driver.read()[0].value == 10.0
    assert driver.read()[1].value == 20.0
    assert driver.frames_rejected == 0


def test_pms3003_frames_are_rejected_not_decoded():
    driver = scripted([PMS3003_FRAME * 2])
    with pytest.raises(FrameError, match="length field"):
        driver.read()
    assert driver.frames_rejected == 1


def test_endless_noise_is_a_frame_error():
    driver = scripted([bytes(range(0x50, 0xFF)) * 3])
    with pytest.raises(FrameError, match="no PMS header"):
        driver.read()
    assert driver.frames_rejected == 1

