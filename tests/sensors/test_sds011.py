"""SDS011: datasheet frames, round trips, and the driver against its emulator on a line
(in memory on a fake clock, and on a real pty: tests/sensors/conftest.py)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.bus.serial import SerialLink
from agent.config.profiles import load_profile, profiles_dir
from agent.emulators import registry as emulator_registry
from agent.emulators.sds011 import Sds011Device, measurement_frame, reply_frame
from agent.emulators.serial_pty import Fault
from agent.errors import BusError, BusTimeout, CrcError, FrameError
from agent.models import Reading
from agent.sensors import registry as driver_registry
from agent.sensors.base import BusKind, DutyCycled, Identifiable, SensorDriver
from agent.sensors.sds011 import (
    BROADCAST_ID,
    CommandReply,
    Sds011,
    Sds011Options,
    encode_command,
    parse_firmware,
    parse_measurement,
    parse_reply,
)
from tests.sensors.rigs import crc_error_of, flipped, serial_link

TIMEOUT_S = 0.3  # short reply timeout so silence tests stay fast
PINNED = (12.3, 45.6)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def zeros(n: int) -> str:
    return " 00" * n


# --- datasheet examples (Laser Dust Sensor Control Protocol V1.3, as transcribed in §1) ---

# (encode_command arguments, command bytes, the reply a fresh A160 sensor gives in table order)
EXCHANGES = [
    ((2, 0, 0), "AA B4 02" + zeros(12) + " FF FF 00 AB", "AA C5 02 00 00 00 A1 60 03 AB"),
    ((2, 1, 1, 0xA160), "AA B4 02 01 01" + zeros(10) + " A1 60 05 AB",
     "AA C5 02 01 01 00 A1 60 05 AB"),
    ((2, 0, 0), "AA B4 02" + zeros(12) + " FF FF 00 AB", "AA C5 02 00 01 00 A1 60 04 AB"),
    ((4, 0, 0), "AA B4 04" + zeros(12) + " FF FF 02 AB", "AA C0 D4 04 3A 0A A1 60 1D AB"),
    ((4, 0, 0, 0xA160), "AA B4 04" + zeros(12) + " A1 60 05 AB",
     "AA C0 D4 04 3A 0A A1 60 1D AB"),
    ((6, 0, 0, 0xA160), "AA B4 06 00 00" + zeros(10) + " A1 60 07 AB",
     "AA C5 06 00 01 00 A1 60 08 AB"),
    ((8, 1, 1, 0xA160), "AA B4 08 01 01" + zeros(10) + " A1 60 0B AB",
     "AA C5 08 01 01 00 A1 60 0B AB"),
    ((8, 1, 0, 0xA160), "AA B4 08 01 00" + zeros(10) + " A1 60 0A AB",
     "AA C5 08 01 00 00 A1 60 0A AB"),
    ((8, 0, 0, 0xA160), "AA B4 08 00 00" + zeros(10) + " A1 60 09 AB",
     "AA C5 08 00 00 00 A1 60 09 AB"),  # computed: the datasheet's sensor had period 2
    ((7, 0, 0, 0xA160), "AA B4 07" + zeros(12) + " A1 60 08 AB",
     "AA C5 07 0F 07 0A A1 60 28 AB"),
    ((6, 1, 0, 0xA160), "AA B4 06 01 00" + zeros(10) + " A1 60 08 AB",
     "AA C5 06 01 00 00 A1 60 08 AB"),
    ((6, 1, 1, 0xA160), "AA B4 06 01 01" + zeros(10) + " A1 60 09 AB",
     "AA C5 06 01 01 00 A1 60 09 AB"),
    ((5, 0, 0, 0xA160, 0xA001), "AA B4 05" + zeros(10) + " A0 01 A1 60 A7 AB",
     "AA C5 05 00 00 00 A0 01 A6 AB"),
    # Broadcast forms (PyPMS test suite agrees byte for byte); not sent to the emulator.
    ((2, 1, 1), "AA B4 02 01 01" + zeros(10) + " FF FF 02 AB", None),
    ((2, 1, 0), "AA B4 02 01 00" + zeros(10) + " FF FF 01 AB", None),
    ((6, 1, 0), "AA B4 06 01 00" + zeros(10) + " FF FF 05 AB", None),
    ((6, 1, 1), "AA B4 06 01 01" + zeros(10) + " FF FF 06 AB", None),
    ((8, 1, 5), "AA B4 08 01 05" + zeros(10) + " FF FF 0C AB", None),
    ((7, 0, 0), "AA B4 07" + zeros(12) + " FF FF 05 AB", None),
]

REPLY_VECTORS = [
    # (wire bytes, decoded reply)
    ("AA C5 02 00 00 00 A1 60 03 AB", CommandReply(2, 0, 0, 0, 0xA160)),  # active mode
    ("AA C5 02 00 01 00 A1 60 04 AB", CommandReply(2, 0, 1, 0, 0xA160)),  # query mode
    ("AA C5 02 01 01 00 A1 60 05 AB", CommandReply(2, 1, 1, 0, 0xA160)),  # set query mode
    ("AA C5 05 00 00 00 A0 01 A6 AB", CommandReply(5, 0, 0, 0, 0xA001)),  # new ID A001
    ("AA C5 06 01 00 00 A1 60 08 AB", CommandReply(6, 1, 0, 0, 0xA160)),  # sleep
    ("AA C5 06 01 01 00 A1 60 09 AB", CommandReply(6, 1, 1, 0, 0xA160)),  # work
    ("AA C5 06 00 01 00 A1 60 08 AB", CommandReply(6, 0, 1, 0, 0xA160)),  # is working
    ("AA C5 08 01 01 00 A1 60 0B AB", CommandReply(8, 1, 1, 0, 0xA160)),  # period 1 min
    ("AA C5 08 01 00 00 A1 60 0A AB", CommandReply(8, 1, 0, 0, 0xA160)),  # continuous
    ("AA C5 08 00 02 00 A1 60 0B AB", CommandReply(8, 0, 2, 0, 0xA160)),  # period is 2 min
    ("AA C5 07 0F 07 0A A1 60 28 AB", CommandReply(7, 15, 7, 10, 0xA160)),  # firmware
]

MEASUREMENT_VECTORS = [
    ("AA C0 D4 04 3A 0A A1 60 1D AB", (123.6, 261.8, 0xA160)),  # datasheet reply
    ("AA C0 7B 00 C8 01 12 34 8A AB", (12.3, 45.6, 0x1234)),
    ("AA C0 0F 27 0F 27 FF FF 6A AB", (999.9, 999.9, 0xFFFF)),  # full scale
]


@pytest.mark.parametrize(("arguments", "wire", "reply"), EXCHANGES)
def test_commands_encode_byte_for_byte(arguments, wire, reply):
    assert encode_command(*arguments) == h(wire)


@pytest.mark.parametrize(("wire", "reply"), REPLY_VECTORS)
def test_replies_decode_to_datasheet_values(wire, reply):
    assert parse_reply(h(wire)) == reply


@pytest.mark.parametrize(("wire", "values"), MEASUREMENT_VECTORS)
def test_measurements_decode_to_datasheet_values(wire, values):
    assert parse_measurement(h(wire)) == values


def test_firmware_reply_prints_like_airrohr():
    assert parse_firmware(h("AA C5 07 0F 07 0A A1 60 28 AB")) == ("15-07-10", 0xA160)


def test_emulator_answers_datasheet_commands_with_datasheet_replies():
    # The emulator computes its checksums; they must reproduce the datasheet's replies.
    device = Sds011Device(pm2_5=123.6, pm10=261.8)
    for _, command, reply in EXCHANGES:
        if reply is not None:
            assert device.receive(h(command)) == [h(reply)], command
    assert device.device_id == 0xA001


def test_bad_frames_raise_with_evidence():
    good = h("AA C0 D4 04 3A 0A A1 60 1D AB")
    error = crc_error_of(parse_measurement, flipped(good, 8, 0x03))
    assert (error.expected, error.received) == (0x1D, 0x1E)
    for broken in (good[:9], good[:9] + b"\xac", b"\xab" + good[1:], good + b"\x00"):
        with pytest.raises(FrameError) as frame_error:
            parse_measurement(broken)
        assert frame_error.value.raw == broken
    with pytest.raises(FrameError):
        parse_reply(good)  # a C0 frame is not a C5 reply
    with pytest.raises(ValueError, match="device_id"):
        encode_command(4, device_id=0x10000)


# --- round trips over the full range --------------------------------------------

@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_measurement_round_trip(pm2_5_tenths, pm10_tenths, device_id):
    assert parse_measurement(measurement_frame(pm2_5_tenths, pm10_tenths, device_id)) == (
        pm2_5_tenths / 10, pm10_tenths / 10, device_id)


@given(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255),
       st.integers(0, 0xFFFF))
def test_reply_round_trip(function, data2, data3, data4, device_id):
    frame = reply_frame(function, data2, data3, data4, device_id)
    assert parse_reply(frame) == CommandReply(function, data2, data3, data4, device_id)


@given(st.sampled_from([2, 4, 6, 7, 8]), st.integers(0, 1), st.integers(0, 1))
def test_every_encoded_command_is_accepted_by_the_device(function, data2, data3):
    device = Sds011Device(pm2_5=1.0, pm10=2.0)
    replies = device.receive(encode_command(function, data2, data3, 0xA160))
    assert len(replies) == 1
    assert device.commands_rejected == 0


# --- the driver against the emulator on a line ----------------------------------

@pytest.fixture
def device(line_clock: Callable[[], float]) -> Sds011Device:
    return Sds011Device(pm2_5=PINNED[0], pm10=PINNED[1], report_interval_s=0.05,
                        clock=line_clock)


@pytest.fixture
def driver(link: SerialLink) -> Sds011:
    return Sds011(link, Sds011Options(reply_timeout_s=TIMEOUT_S))


def test_registered_and_protocols():
    spec = driver_registry()["sds011"]
    assert (spec.bus, spec.driver_type, spec.options_type) == (BusKind.SERIAL, Sds011,
                                                               Sds011Options)
    assert isinstance(emulator_registry()["sds011"].factory(), Sds011Device)
    assert Sds011.quantities == ("pm2_5", "pm10")
    driver = Sds011(SerialLink(None, "unused"), Sds011Options())  # type: ignore[arg-type]
    for protocol in (SensorDriver, DutyCycled, Identifiable):
        assert isinstance(driver, protocol)


def test_quantities_match_the_profile():
    profile = load_profile(profiles_dir() / "sds011.toml")
    assert tuple(q.name for q in profile.quantities) == Sds011.quantities
    assert (profile.bus, profile.baudrate) == ("serial", 9600)


def test_start_then_read_end_to_end(driver, device):
    # Power-up state is active mode, reporting every 50 ms: start() must skip those C0 frames.
    assert not device.query_mode
    driver.start()
    assert device.query_mode and device.working
    assert device.commands == [
        h("AA B4 06 01 01" + zeros(10) + " FF FF 06 AB"),  # work
        h("AA B4 02 01 01" + zeros(10) + " FF FF 02 AB"),  # query reporting mode
        h("AA B4 08 00 00" + zeros(10) + " FF FF 06 AB"),  # read working period (already 0)
    ]
    assert driver.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]
    device.pm2_5, device.pm10 = 999.9, 999.9
    assert driver.read() == [Reading("pm2_5", 999.9), Reading("pm10", 999.9)]
    assert device.queries_answered == 2
    assert driver.sensor_id == 0xA160
    assert driver.identify() == {"firmware": "15-07-10", "device_id": "a160"}
    assert driver.frames_rejected == 0


def test_active_mode_frames_between_replies_are_tolerated(driver, device, pause):
    driver.start()
    device.query_mode = False  # another host switched it back to active: frames every 50 ms
    reported_before = device.frames_reported
    for _ in range(5):
        assert driver.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]
        driver.wake()  # command replies arrive among the C0 frames too
        pause(0.06)
    assert device.frames_reported > reported_before
    assert driver.frames_rejected == 0


def test_random_walk_is_plausible_and_seeded():
    first, second = Sds011Device(seed=7), Sds011Device(seed=7)
    query = encode_command(4)
    values = [parse_measurement(first.receive(query)[0]) for _ in range(300)]
    assert values == [parse_measurement(second.receive(query)[0]) for _ in range(300)]
    assert all(0 < pm2_5 <= pm10 < 999.9 for pm2_5, pm10, _ in values)
    steps = [abs(b[0] - a[0]) for a, b in itertools.pairwise(values)]
    assert max(steps) < 3  # slow drift, not noise
    assert len({v[0] for v in values}) > 20


def test_bad_checksum_raises_crc_error_and_counts(driver, emu):
    driver.start()
    emu.inject(Fault.BAD_CHECKSUM)
    with pytest.raises(CrcError) as caught:
        driver.read()
    assert caught.value.raw[:2] == h("AA C0")
    assert caught.value.expected != caught.value.received
    assert driver.frames_rejected == 1
    assert driver.read()[0] == Reading("pm2_5", 12.3)  # the next query is clean


def test_truncated_reply_raises_frame_error_with_raw(driver, emu):
    driver.start()
    emu.inject(Fault.TRUNCATED)
    with pytest.raises(FrameError) as caught:
        driver.read()
    assert caught.value.raw == h("AA C0 7B 00 C8")
    assert driver.frames_rejected == 1
    assert driver.read()[1] == Reading("pm10", 45.6)


def test_garbage_before_reply_is_skipped(driver, emu):
    driver.start()
    emu.inject(Fault.GARBAGE, count=2)
    assert driver.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]
    assert driver.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]
    assert driver.frames_rejected == 0
    assert driver.bytes_discarded > 0, "the noise is counted, though every frame got through"


def test_silence_raises_bus_timeout(driver, emu):
    driver.start()
    emu.inject(Fault.SILENCE)
    started = time.monotonic()
    with pytest.raises(BusTimeout):
        driver.read()
    assert time.monotonic() - started < TIMEOUT_S + 2.0  # bounded; slack for load


def test_sleeping_device_ignores_queries_until_woken(driver, device):
    driver.start()
    driver.sleep()
    assert device.sleeping and device.sleep_count == 1 and driver.asleep
    answered = device.queries_answered
    with pytest.raises(BusTimeout):
        driver.read()
    with pytest.raises(BusTimeout):
        driver.identify()
    assert device.queries_answered == answered
    assert device.commands_ignored_asleep == 2
    driver.wake()
    assert not device.sleeping and device.wake_count == 1
    assert driver.read()[0] == Reading("pm2_5", 12.3)
    driver.stop()
    assert device.sleeping and device.sleep_count == 2


def test_sleeping_active_device_stops_reporting(device):
    device.receive(encode_command(6, 1, 0))
    assert device.poll(0.0) == [] and device.poll(100.0) == []
    assert device.frames_reported == 0
    device.power_cycle()  # sleep does not survive power-off; the reporting mode does
    assert device.working and not device.query_mode


def test_reset_restores_query_mode_after_power_cycle_and_other_host(driver, device):
    driver.start()
    device.receive(encode_command(2, 1, 0))  # another host set active mode (persists)
    device.receive(encode_command(6, 1, 0))
    device.power_cycle()
    driver.reset()
    assert device.query_mode and device.working
    assert driver.read()[0] == Reading("pm2_5", 12.3)


def test_start_makes_a_periodic_sensor_continuous(link, device):
    device.receive(encode_command(8, 1, 5))
    assert device.working_period_min == 5
    driver = Sds011(link, Sds011Options(reply_timeout_s=TIMEOUT_S))
    driver.start()
    assert device.working_period_min == 0
    assert device.commands[-1] == h("AA B4 08 01 00" + zeros(10) + " FF FF 07 AB")


def test_periodic_sensor_sleeps_outside_its_work_window():
    now = [0.0]
    device = Sds011Device(pm2_5=5.0, pm10=6.0, working_period_min=2, clock=lambda: now[0])
    query = encode_command(4)
    assert len(device.receive(query)) == 1  # inside the first 30 s
    now[0] = 45.0
    assert device.receive(query) == []  # off phase of the 2 min cycle
    assert device.poll(45.0) != []  # active mode: one report after the work window
    assert device.poll(46.0) == []
    now[0] = 125.0
    assert len(device.receive(query)) == 1  # next cycle's work window


@pytest.mark.parametrize("line", ["pty"], indirect=True)
def test_vanish_raises_bus_error_and_reopening_works(emu, link, device):
    driver = Sds011(link, Sds011Options(reply_timeout_s=TIMEOUT_S))
    driver.start()
    emu.vanish()
    with pytest.raises(BusError):
        driver.read()
    emu.reappear()
    with serial_link(emu.port, 9600) as fresh:
        again = Sds011(fresh, Sds011Options(reply_timeout_s=TIMEOUT_S))
        again.start()
        assert again.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]


@pytest.mark.parametrize("line", ["pty"], indirect=True)
def test_every_read_on_a_vanished_port_raises_bus_error(emu, driver):
    driver.start()
    emu.vanish()
    for _ in range(3):
        with pytest.raises(BusError):
            driver.read()


def test_configured_id_ignores_other_sensors_on_the_line(link, emu, device, pause):
    neighbour = Sds011Device(device_id=0x1234, pm2_5=88.8, pm10=99.9, report_interval_s=0.02)

    class Line:  # two sensors sharing the host's RX line
        def receive(self, data: bytes) -> list[bytes]:
            return device.receive(data) + neighbour.receive(data)

        def poll(self, now: float) -> list[bytes]:
            return device.poll(now) + neighbour.poll(now)

        def corrupt(self, frame: bytes) -> bytes:
            return device.corrupt(frame)

    emu.device = Line()
    driver = Sds011(link, Sds011Options(device_id=0xA160, reply_timeout_s=TIMEOUT_S))
    driver.start()
    for _ in range(5):
        assert driver.read() == [Reading("pm2_5", 12.3), Reading("pm10", 45.6)]
        pause(0.03)
    assert neighbour.commands == [] and neighbour.commands_for_others > 0
    assert neighbour.frames_reported > 0  # it kept chattering in active mode
    assert driver.identify()["device_id"] == "a160"


def test_unknown_id_gets_silence(link, device):
    driver = Sds011(link, Sds011Options(device_id=0x0BAD, reply_timeout_s=TIMEOUT_S))
    device.query_mode = True
    with pytest.raises(BusTimeout):
        driver.start()
    assert device.commands_for_others == 1 and device.commands == []


def test_emulator_ignores_malformed_commands(link, device):
    device.query_mode = True
    good = encode_command(4)
    bad_sum = good[:17] + bytes([good[17] ^ 0x01]) + good[18:]
    bad_tail = good[:18] + b"\xac"
    for bad in (bad_sum, bad_tail):
        assert device.receive(bad) == []
    assert device.commands_rejected >= 2
    rejected = device.commands_rejected
    link.write(bad_sum)
    assert link.read_some(10) == b""  # through the line: silence, as the chip does
    assert device.commands_rejected == rejected + 1
    assert device.queries_answered == 0
    assert device.receive(b"\x00\x13" + good) == [measurement_frame(123, 456, 0xA160)]


def test_emulator_ignores_out_of_range_arguments(device):
    assert device.receive(encode_command(8, 1, 31)) == []
    assert device.receive(encode_command(2, 1, 2)) == []
    assert device.receive(encode_command(9, 0, 0)) == []
    assert device.commands_unsupported == 3
    assert device.working_period_min == 0 and not device.query_mode


def test_corrupt_flips_only_the_checksum(device):
    frame = measurement_frame(123, 456, BROADCAST_ID)
    broken = device.corrupt(frame)
    assert broken[:8] == frame[:8] and broken[9] == frame[9] and broken[8] != frame[8]
