"""Generic Modbus RTU: reference frames, encode/decode round trips, profile-driven options,
and the driver against the generic slave emulator on a line (in memory on a fake clock,
and on a real pty: tests/sensors/conftest.py)."""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.crc import crc16_modbus
from agent.bus.serial import SerialLink
from agent.config.modbus import ModbusOptions, RegisterSpec
from agent.config.profiles import Profile, all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.modbus import ModbusSlave, encode
from agent.emulators.serial_pty import Fault, PtySerialEmulator
from agent.errors import BusError, BusTimeout, ConfigError, CrcError, DataNotReady, FrameError
from agent.models import Reading
from agent.plan import driver_options
from agent.sensors import registry
from agent.sensors.base import BusKind, SensorDriver
from agent.sensors.modbus import (
    ModbusBusy,
    ModbusException,
    ModbusRtu,
    decode_value,
    encode_read_request,
    frame_gap_s,
    parse_read_reply,
    plan_blocks,
)
from tests.memory_serial import MemoryLine
from tests.sensors.rigs import crc_error_of, serial_link

Line = MemoryLine | PtySerialEmulator
"""Where the device is: a line in memory or a pseudo-terminal (tests/sensors/conftest.py)."""

NOISE = "modbus_noise_rs_zs_n01"
WIND = "modbus_wind_rs_fsjt_n01"
TIMEOUT_S = 0.3


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def reg(quantity: str, address: int, **settings: object) -> RegisterSpec:
    return RegisterSpec.model_validate({"quantity": quantity, "address": address, **settings})


def options_from(table: dict) -> ModbusOptions:
    return driver_options("s", registry()["modbus"], table, "test.toml")


# --- reference frames ------------------------------------------------------------------

def test_crc16_modbus_check_value() -> None:
    assert crc16_modbus(b"123456789") == 0x4B37


def test_reference_requests() -> None:
    assert encode_read_request(1, 3, 0, 1) == h("01 03 00 00 00 01 84 0A")  # noise sketch
    assert encode_read_request(1, 3, 0, 2) == h("01 03 00 00 00 02 C4 0B")
    assert encode_read_request(0x68, 4, 3, 1) == h("68 04 00 03 00 01 C8 F3")  # AN123, K30
    for bad in ((0, 3, 0, 1), (248, 3, 0, 1), (1, 6, 0, 1), (1, 3, 0, 0), (1, 3, 0, 126),
                (1, 3, 0xFFFF, 2)):
        with pytest.raises(ValueError):
            encode_read_request(*bad)


def test_reference_replies() -> None:
    assert parse_read_reply(h("68 04 02 03 01 24 09"), 0x68, 4, 1) == [769]  # 769 ppm
    noise = reg("sound_level", 0, scale=0.1)
    words = parse_read_reply(h("01 03 02 02 6D 78 C9"), 1, 3, 1)
    assert decode_value(words, noise) == pytest.approx(62.1)
    wind = parse_read_reply(h("01 03 02 00 79 79 A6"), 1, 3, 1)  # 12.1 m/s
    assert decode_value(wind, reg("wind_speed", 0, scale=0.1)) == pytest.approx(12.1)
    with pytest.raises(ModbusException) as caught:
        parse_read_reply(h("01 83 02 C0 F1"), 1, 3, 1)
    assert (caught.value.code, caught.value.name) == (2, "ILLEGAL DATA ADDRESS")
    assert "ILLEGAL DATA ADDRESS" in str(caught.value)


def test_emulator_produces_the_reference_replies() -> None:
    device = ModbusSlave(values={"sound_level": 62.1})
    assert device.handle(h("01 03 00 00 00 01 84 0A")) == [h("01 03 02 02 6D 78 C9")]
    assert device.handle(encode_read_request(1, 3, 5, 1)) == [h("01 83 02 C0 F1")]
    k30 = ModbusSlave(slave_id=0x68, function=4, values={"co2": 769},
                      registers=[{"quantity": "co2", "address": 3}])
    assert k30.handle(h("68 04 00 03 00 01 C8 F3")) == [h("68 04 02 03 01 24 09")]


def test_bad_replies_raise_with_evidence() -> None:
    good = h("01 03 02 02 6D 78 C9")
    error = crc_error_of(lambda frame: parse_read_reply(frame, 1, 3, 1), good[:-1] + b"\xca")
    assert (error.expected, error.received) == (0xC978, 0xCA78)
    with pytest.raises(FrameError, match="slave 1, expected 2"):
        parse_read_reply(good, 2, 3, 1)
    with pytest.raises(FrameError, match="function 0x03"):
        parse_read_reply(good, 1, 4, 1)
    with pytest.raises(FrameError, match="data bytes"):
        parse_read_reply(good, 1, 3, 2)
    with pytest.raises(FrameError, match="too short"):
        parse_read_reply(good[:4], 1, 3, 1)
    busy = bytes([1, 0x83, 6])
    busy += crc16_modbus(busy).to_bytes(2, "little")
    with pytest.raises(DataNotReady) as not_ready:
        parse_read_reply(busy, 1, 3, 1)
    assert isinstance(not_ready.value, ModbusBusy) and not_ready.value.code == 6


def test_frame_gap_follows_the_serial_line_spec() -> None:
    assert frame_gap_s(9600) == pytest.approx(0.0040104, abs=1e-6)  # 3.5 x 11 bits
    assert frame_gap_s(4800) == pytest.approx(0.0080208, abs=1e-6)
    assert frame_gap_s(19200) == pytest.approx(0.0020052, abs=1e-6)
    assert frame_gap_s(38400) == frame_gap_s(115200) == 0.00175


# --- round trips -------------------------------------------------------------------------

@given(st.integers(1, 247), st.sampled_from([3, 4]), st.integers(0, 0xFFFF - 125),
       st.integers(1, 125), st.randoms(use_true_random=False))
def test_request_reply_round_trip(slave: int, function: int, address: int, count: int,
                                  rng) -> None:
    registers = [{"quantity": f"q{i}", "address": address + i} for i in range(count)]
    values = {f"q{i}": rng.randint(0, 0xFFFF) for i in range(count)}
    device = ModbusSlave(slave_id=slave, function=function, registers=registers,
                         values=values)
    (reply,) = device.handle(encode_read_request(slave, function, address, count))
    assert parse_read_reply(reply, slave, function, count) == [values[f"q{i}"]
                                                               for i in range(count)]


spec_strategy = st.builds(
    dict, signed=st.booleans(), words=st.sampled_from([1, 2]),
    word_order=st.sampled_from(["big", "little"]),
    scale=st.sampled_from([1.0, 0.1, 0.01, 10.0]), offset=st.sampled_from([0.0, -40.0]))


@given(spec_strategy, st.floats(0, 1))
def test_value_round_trip_over_the_full_raw_range(spec: dict, fraction: float) -> None:
    bits = 16 * spec["words"]
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if spec["signed"] \
        else (0, (1 << bits) - 1)
    raw = round(low + fraction * (high - low))
    value = raw * spec["scale"] + spec["offset"]
    words = encode(reg("x", 0, **spec), value)
    decoded = decode_value(words, reg("x", 0, **spec))
    assert decoded == pytest.approx(value, rel=1e-9, abs=spec["scale"] / 2)


@given(st.floats(-1e6, 1e6, width=32), st.sampled_from(["big", "little"]))
def test_float32_round_trip(value: float, order: str) -> None:
    words = encode(reg("x", 0, words=2, float32=True, word_order=order), value)
    assert decode_value(words, reg("x", 0, words=2, float32=True, word_order=order)) == value


def test_word_order_and_sign() -> None:
    signed = reg("t", 0, scale=0.1, signed=True)
    assert decode_value([0xFF9B], signed) == pytest.approx(-10.1)
    assert decode_value([0xFF9B], reg("t", 0, scale=0.1)) == pytest.approx(6543.5)
    assert decode_value([0x0001, 0x0002], reg("e", 0, words=2)) == 0x00010002
    assert decode_value([0x0001, 0x0002],
                        reg("e", 0, words=2, word_order="little")) == 0x00020001


def test_plan_blocks_groups_gap_free_runs() -> None:
    regs = [reg("a", 0), reg("b", 1), reg("c", 2, words=2),
            reg("d", 10)]
    blocks = plan_blocks(regs)
    assert [(b.address, b.count) for b in blocks] == [(0, 4), (10, 1)]
    assert [s.quantity for s in blocks[0].specs] == ["a", "b", "c"]
    assert [(b.address, b.count) for b in plan_blocks(regs, max_count=1)] == [
        (0, 1), (1, 1), (2, 2), (10, 1)]
    assert [(b.address, b.count) for b in plan_blocks(regs, max_count=3)] == [
        (0, 2), (2, 2), (10, 1)]
    overlap = [reg("w", 4, words=2), reg("lo", 5)]
    assert [(b.address, b.count) for b in plan_blocks(overlap)] == [(4, 2)]


# --- options from TOML profiles ------------------------------------------------------------

PROFILE_TOML = """
model = "test_meter"
driver = "modbus"
name = "Test"
bus = "serial"
baudrate = 9600
warmup_s = 0
min_interval_s = 1
default_interval_s = 10
quantities = [
  {name = "temperature", unit = "Cel", min = -40, max = 80, resolution = 0.1},
  {name = "energy", unit = "kW.h", min = 0, max = 1e9, resolution = 0.01},
]
[driver_options]
slave_id = 7
function = 4
[[driver_options.registers]]
quantity = "temperature"
address = 1
scale = 0.1
signed = true
[[driver_options.registers]]
quantity = "energy"
address = 2
words = 2
word_order = "little"
float32 = true
"""


def test_profile_driver_options_validate_into_modbus_options() -> None:
    profile = Profile.model_validate(tomllib.loads(PROFILE_TOML))
    assert profile.driver_name == "modbus"
    options = options_from(profile.driver_options)
    assert isinstance(options, ModbusOptions)
    assert (options.slave_id, options.function) == (7, 4)
    assert options.registers == (
        reg("temperature", 1, scale=0.1, signed=True),
        reg("energy", 2, words=2, word_order="little", float32=True))
    assert options.quantity_names == tuple(q.name for q in profile.quantities)
    # A sensor's own options override the profile's key by key.
    moved = options_from({**profile.driver_options, "slave_id": 9})
    assert moved.slave_id == 9 and moved.registers == options.registers


@pytest.mark.parametrize(("table", "key", "reason"), [
    ({"registers": [{"quantity": "x", "address": 0, "scal": 0.1}]},
     "sensors.s.options.registers[0].scal", "unknown key"),
    ({"registers": []}, "sensors.s.options.registers", "at least 1 item"),
    ({"slave_id": 0, "registers": [{"quantity": "x", "address": 0}]},
     "sensors.s.options.slave_id", "greater than or equal to 1"),
    ({"function": 6, "registers": [{"quantity": "x", "address": 0}]},
     "sensors.s.options.function", "3 or 4"),
    ({"registers": [{"quantity": "x", "address": 0, "words": 3}]},
     "sensors.s.options.registers[0].words", "1 or 2"),
    ({"registers": [{"quantity": "x", "address": 0}, {"quantity": "x", "address": 1}]},
     "sensors.s.options", "repeat"),
    ({"registers": [{"quantity": "x", "address": 0}], "baud": 9600}, "sensors.s.options.baud",
     "unknown option"),
])
def test_bad_driver_options_name_the_key(table: dict, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        options_from(table)
    assert any(k.startswith(key) and reason in r for k, r in caught.value.problems), \
        caught.value.problems


@pytest.mark.parametrize("model", [NOISE, WIND])
def test_example_profiles_are_generic_and_one_to_one(model: str) -> None:
    profile = all_profiles()[model]
    assert profile.driver_name == "modbus" and profile.bus == "serial"
    options = options_from(profile.driver_options)
    assert options.quantity_names == tuple(q.name for q in profile.quantities)
    device = emulator_registry()["modbus"].factory(profile=profile)
    assert isinstance(device, ModbusSlave)
    assert (device.slave_id, device.baudrate) == (options.slave_id, profile.baudrate)
    for quantity in profile.quantities:
        for _ in range(50):
            assert quantity.min <= device.value(quantity.name) <= quantity.max


def test_registered_as_the_generic_modbus_driver() -> None:
    spec = registry()["modbus"]
    assert (spec.bus, spec.driver_type, spec.options_type) == (BusKind.SERIAL, ModbusRtu,
                                                               ModbusOptions)
    assert ModbusRtu.generic is True and ModbusRtu.quantities == ()
    assert isinstance(emulator_registry()["modbus"].factory(), ModbusSlave)
    driver = ModbusRtu(SerialLink(None, "unused"),  # type: ignore[arg-type]
                       options_from({"registers": [{"quantity": "x", "address": 0}]}))
    assert isinstance(driver, SensorDriver)
    assert driver.baudrate == 9600  # no port to ask: the common default


# --- the driver against the emulator on a line -------------------------------------------

@pytest.fixture
def device(line_clock: Callable[[], float]) -> ModbusSlave:
    return ModbusSlave.from_profile(all_profiles()[NOISE], values={"sound_level": 62.1},
                                    clock=line_clock)


@pytest.fixture
def baud() -> int:
    """The RS485 transmitters' factory speed (the conftest's ``link`` uses it)."""
    return 4800


def noise_driver(link: SerialLink, **overrides: object) -> ModbusRtu:
    table = {**all_profiles()[NOISE].driver_options, "reply_timeout_s": TIMEOUT_S,
             **overrides}
    return ModbusRtu(link, options_from(table))


def test_noise_transmitter_end_to_end(link: SerialLink, device: ModbusSlave) -> None:
    driver = noise_driver(link)
    assert driver.baudrate == 4800 and driver.gap_s == pytest.approx(0.00802, abs=1e-5)
    driver.start()
    assert driver.read() == [Reading("sound_level", pytest.approx(62.1))]
    assert device.requests == [h("01 03 00 00 00 01 84 0A")] * 2
    device.values.clear()  # back to the street-noise walk
    levels = [driver.read()[0].value for _ in range(5)]
    assert all(35 <= v <= 80 for v in levels) and len(set(levels)) > 1
    assert driver.frames_rejected == 0


def test_multi_register_device_end_to_end(emu: Line, link: SerialLink,
                                          line_clock: Callable[[], float]) -> None:
    profile = Profile.model_validate(tomllib.loads(PROFILE_TOML))
    slave = ModbusSlave.from_profile(profile, values={"temperature": -12.3, "energy": 1234.5},
                                     clock=line_clock)
    emu.device = slave
    driver = ModbusRtu(link, options_from({**profile.driver_options,
                                           "reply_timeout_s": TIMEOUT_S}))
    assert driver.read() == [Reading("temperature", pytest.approx(-12.3)),
                             Reading("energy", 1234.5)]
    assert slave.requests == [encode_read_request(7, 4, 1, 3)]  # one covering block
    split = ModbusRtu(link, options_from({**profile.driver_options, "reply_timeout_s": 0.3,
                                          "max_registers_per_request": 1}))
    slave.requests.clear()
    assert [r.value for r in split.read()] == [pytest.approx(-12.3), 1234.5]
    assert slave.requests == [encode_read_request(7, 4, 1, 1), encode_read_request(7, 4, 2, 2)]


def test_bad_crc_reply_is_rejected_and_counted(link: SerialLink, emu: Line) -> None:
    driver = noise_driver(link)
    emu.inject(Fault.BAD_CHECKSUM)
    with pytest.raises(CrcError) as caught:
        driver.read()
    assert caught.value.raw[:3] == h("01 03 02")
    assert driver.frames_rejected == 1
    assert driver.read()[0].value == pytest.approx(62.1)


def test_truncated_and_garbled_replies_are_frame_errors(link: SerialLink,
                                                        emu: Line) -> None:
    driver = noise_driver(link)
    emu.inject(Fault.TRUNCATED)
    with pytest.raises(FrameError, match="truncated") as caught:
        driver.read()
    assert caught.value.raw == h("01 03 02")
    emu.inject(Fault.GARBAGE)
    with pytest.raises(FrameError, match="not a reply"):
        driver.read()
    assert driver.frames_rejected == 2
    assert driver.read()[0].value == pytest.approx(62.1)  # the leftovers were flushed


def test_silence_is_a_bus_timeout(link: SerialLink, emu: Line) -> None:
    driver = noise_driver(link)
    emu.inject(Fault.SILENCE)
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        driver.read()
    assert time.monotonic() - started < TIMEOUT_S + 2.0  # bounded; slack for load
    assert driver.frames_rejected == 0


def test_exceptions_name_the_modbus_code(link: SerialLink, device: ModbusSlave) -> None:
    driver = noise_driver(link)
    device.raise_next(0x04)
    with pytest.raises(ModbusException, match="SERVER DEVICE FAILURE"):
        driver.read()
    device.raise_next(0x06)
    with pytest.raises(DataNotReady, match="SERVER DEVICE BUSY"):
        driver.read()
    wrong_address = noise_driver(link, registers=[{"quantity": "sound_level", "address": 14,
                                                   "scale": 0.1}])
    with pytest.raises(ModbusException) as caught:
        wrong_address.read()
    assert caught.value.code == 0x02
    wrong_function = noise_driver(link, function=4)
    with pytest.raises(ModbusException) as illegal:
        wrong_function.read()
    assert illegal.value.code == 0x01 and device.exceptions_sent == 4
    assert driver.frames_rejected == 0  # exception replies are valid frames


def test_other_slave_ids(link: SerialLink, device: ModbusSlave) -> None:
    stranger = noise_driver(link, slave_id=2)
    with pytest.raises(BusTimeout):
        stranger.start()  # the slave stays silent for another id
    assert device.frames_for_others == 1
    device.reply_slave_id = 3  # a misconfigured twin answering under another id
    driver = noise_driver(link)
    with pytest.raises(FrameError, match="not a reply from slave 1"):
        driver.read()
    assert driver.frames_rejected == 1


def test_emulator_ignores_bad_crc_and_broadcast(link: SerialLink, device: ModbusSlave) -> None:
    request = h("01 03 00 00 00 01 84 0A")
    link.write(request[:-1] + b"\x0b")
    assert link.read_some(7) == b""  # silence, as an RS485 slave does
    assert device.frames_bad_crc == 1
    assert device.handle(b"\x01") == []  # a lone byte is no frame
    broadcast = bytes([0, 3, 0, 0, 0, 1])
    assert device.handle(broadcast + crc16_modbus(broadcast).to_bytes(2, "little")) == []
    assert device.handle(encode_read_request(1, 3, 0, 125))[0][1] == 0x83  # unmapped: 02
    too_many = bytes([1, 3, 0, 0, 0, 126])
    (reply,) = device.handle(too_many + crc16_modbus(too_many).to_bytes(2, "little"))
    assert reply[1:3] == h("83 03")


def test_requests_keep_the_inter_frame_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    slave = ModbusSlave(registers=[{"quantity": "a", "address": 0},
                                   {"quantity": "b", "address": 5}], values={"a": 1, "b": 2})
    sent: list[float] = []

    class Port:  # answers instantly, so only the driver's own gap separates the requests
        baudrate = 9600
        timeout = 0.1
        pending = b""

        def write(self, data: bytes) -> int:
            sent.append(time.monotonic())
            self.pending = slave.handle(data)[0]
            return len(data)

        def read(self, size: int = 1) -> bytes:
            out, self.pending = self.pending[:size], self.pending[size:]
            return out

        def reset_input_buffer(self) -> None:
            self.pending = b""

        def close(self) -> None:
            pass

    driver = ModbusRtu(SerialLink(Port(), "fake"), options_from(
        {"registers": [{"quantity": "a", "address": 0}, {"quantity": "b", "address": 5}]}))
    assert [r.value for r in driver.read()] == [1, 2]
    assert len(sent) == 2 and sent[1] - sent[0] >= frame_gap_s(9600) * 0.95


@pytest.mark.parametrize("line", ["pty"], indirect=True)
def test_vanish_then_reopen(emu: PtySerialEmulator, link: SerialLink) -> None:
    driver = noise_driver(link)
    driver.start()
    emu.vanish()
    with pytest.raises(BusError):
        driver.read()
    emu.reappear()
    with serial_link(emu.port, 4800) as fresh:
        again = noise_driver(fresh)
        again.reset()
        again.start()
        assert again.read()[0].value == pytest.approx(62.1)
