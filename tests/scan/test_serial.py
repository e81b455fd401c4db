"""Serial identification: pure frame recognition, then whole scans against emulators.

The emulators record every command they receive; each test checks that only the
documented read-only queries arrived and that the device's mode did not change. Each
scan runs twice: in memory on a fake clock with the real listening windows
(``tests/memory_serial.py``, no real time), and, marked slow, through real pyserial on a
pseudo-terminal with shortened windows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.bus.serial import SerialLink, open_serial
from agent.clock import SYSTEM
from agent.config.profiles import all_profiles, load_profile
from agent.emulators.modbus import ModbusSlave
from agent.emulators.pms5003 import PmsDevice
from agent.emulators.sds011 import Sds011Device
from agent.emulators.serial_pty import PtySerialEmulator, SerialDevice
from agent.scan.findings import State
from agent.scan.serial import (
    BaudPlan,
    PortChoice,
    PortOutcome,
    SerialTiming,
    plans_for,
    pms_frames,
    recognise,
    scan_port,
    sds011_frames,
)
from agent.sensors.pms5003 import encode_command as pms_command
from tests.clock import FakeClock
from tests.memory_serial import MemoryLine

PROFILES = Path(__file__).resolve().parents[2] / "firmware_profiles"
PLANS = plans_for(all_profiles().values())
FAST = SerialTiming(sds011_listen_s=0.6, pms_listen_s=0.6, quiet_listen_s=0.1,
                    reply_timeout_s=0.4, modbus_timeout_s=0.3)
SDS011_DATASHEET = bytes.fromhex("AA C0 D4 04 3A 0A A1 60 1D AB")
PMS_PYPMS = bytes.fromhex("424D001C0005000D00160005000D001602FD00FC001D000F00060006970003C5")
PLAN_9600 = BaudPlan(9600, frozenset({"sds011", "pms"}), ("pms5003", "pms7003", "pmsa003"))


class MemoryRig:
    """The device in memory on a fake clock: the real windows, waited in no real time."""

    timing = SerialTiming()

    def __init__(self) -> None:
        self.clock: Callable[[], float] = FakeClock()

    def scan(self, device: SerialDevice) -> PortOutcome:
        assert isinstance(self.clock, FakeClock)
        line = MemoryLine(device, self.clock)

        def open_link(name: str, baudrate: int, timeout_s: float) -> SerialLink:
            return line.open(baudrate, timeout_s)

        return scan_port(open_link, PortChoice(line.port), PLANS, self.timing)

    def close(self) -> None:
        pass


class PtyRig:
    """The device behind a pseudo-terminal, read by pyserial in real (shortened) time."""

    timing = FAST

    def __init__(self) -> None:
        self.clock: Callable[[], float] = SYSTEM.monotonic
        self._started: list[PtySerialEmulator] = []

    def scan(self, device: SerialDevice) -> PortOutcome:
        emulator = PtySerialEmulator(device)
        emulator.start()
        self._started.append(emulator)
        return scan_port(open_serial, PortChoice(emulator.port), PLANS, self.timing)

    def close(self) -> None:
        for emulator in self._started:
            emulator.close()


@pytest.fixture(params=[MemoryRig, pytest.param(PtyRig, marks=pytest.mark.slow)],
                ids=["memory", "pty"])
def rig(request: pytest.FixtureRequest) -> Iterator[MemoryRig | PtyRig]:
    instance = request.param()
    yield instance
    instance.close()


# --- pure ---------------------------------------------------------------------------------
def test_plans_put_the_talkers_first() -> None:
    assert [plan.baudrate for plan in PLANS] == [9600, 4800]
    assert PLANS[0].families == {"sds011", "pms"}
    assert PLANS[0].pms_models == ("pms5003", "pms7003", "pmsa003")
    assert PLANS[1].families == {"modbus"}
    assert {c.model for c in PLANS[1].modbus} == {"modbus_noise_rs_zs_n01",
                                                  "modbus_wind_rs_fsjt_n01"}


def test_listen_windows_cover_one_unsolicited_frame() -> None:
    timing = SerialTiming()
    assert timing.listen_s({"sds011"}) >= 1.5  # one frame a second, "1+0.5 s"
    assert timing.listen_s({"sds011", "pms"}) > 2.3  # PMS stable sub-mode period
    assert timing.listen_s({"modbus"}) == timing.quiet_listen_s <= 0.25
    # A silent port costs a few seconds per rate, not more.
    per_rate = [timing.listen_s(p.families) + 2 * timing.reply_timeout_s for p in PLANS]
    assert max(per_rate) <= 5.0


def test_sds011_frames_resync_and_check_the_sum() -> None:
    bad = bytearray(SDS011_DATASHEET)
    bad[8] ^= 0xFF
    stream = b"\x00\xaa\x13" + bytes(bad) + SDS011_DATASHEET + b"\xaa\xc0" + SDS011_DATASHEET
    assert sds011_frames(stream) == [SDS011_DATASHEET, SDS011_DATASHEET]
    identity = recognise(stream, PLAN_9600)
    assert identity is not None and identity.model == "sds011"
    assert identity.facts == {"device_id": "a160"}


def test_pms_frames_need_the_sixteen_bit_sum() -> None:
    bad = bytearray(PMS_PYPMS)
    bad[-1] ^= 0x01
    frames = pms_frames(b"BM\x00" + bytes(bad) + PMS_PYPMS)
    assert len(frames) == 1 and frames[0].pm2_5 == 13 and frames[0].version == 0x97
    identity = recognise(PMS_PYPMS, PLAN_9600)
    assert identity is not None and identity.model == "pms5003"
    assert identity.alternatives == ("pms7003", "pmsa003")
    assert identity.facts == {"firmware": "0x97"}


def test_recognise_respects_the_rate_plan() -> None:
    modbus_only = BaudPlan(4800, frozenset({"modbus"}))
    assert recognise(SDS011_DATASHEET + PMS_PYPMS, modbus_only) is None
    assert recognise(b"\x42\x4d\x00\x1c" + bytes(10), PLAN_9600) is None


# --- against emulators --------------------------------------------------------------------
def test_active_sds011_is_heard_then_asked_only_its_firmware(rig) -> None:
    device = Sds011Device(device_id=0x1234, report_interval_s=0.1, clock=rig.clock)
    outcome = rig.scan(device)
    finding = outcome.finding
    assert finding is not None and finding.model == "sds011" and finding.baudrate == 9600
    assert finding.identity.facts == {"device_id": "1234", "firmware": "15-07-10"}
    assert [(c[2], c[3]) for c in device.commands] == [(7, 0)]  # firmware, data 2 = read
    assert not device.query_mode and device.working and device.working_period_min == 0


def test_sds011_in_query_mode_is_asked_read_only_queries(rig) -> None:
    device = Sds011Device(query_mode=True, clock=rig.clock)
    outcome = rig.scan(device)
    assert outcome.finding is not None and outcome.finding.model == "sds011"
    assert outcome.finding.identity.facts["firmware"] == "15-07-10"
    assert "query reporting mode" in outcome.finding.identity.notes[0]
    assert [(c[2], c[3]) for c in device.commands] == [(7, 0), (2, 0)]
    assert device.query_mode and device.working


def test_sleeping_sds011_stays_asleep(rig) -> None:
    device = Sds011Device(query_mode=True, clock=rig.clock)
    device.working = False
    outcome = rig.scan(device)
    assert outcome.silent and outcome.finding is None
    assert all(c[2] != 6 for c in device.commands)  # sleep/work never sent
    assert device.sleeping and device.wake_count == 0


def test_active_pms_gets_no_command(rig) -> None:
    device = PmsDevice(period_s=0.2)
    outcome = rig.scan(device)
    assert outcome.finding is not None and outcome.finding.model == "pms5003"
    assert device.accepted == [] and device.commands_ignored == 0
    assert device.mode == "active"


def test_passive_pms_answers_one_passive_read(rig) -> None:
    device = PmsDevice(period_s=0.2)
    device.mode = "passive"
    outcome = rig.scan(device)
    assert outcome.finding is not None and outcome.finding.model == "pms5003"
    assert "passive mode" in outcome.finding.identity.notes[0]
    assert device.accepted == [pms_command(0xE2)] and device.mode == "passive"


def test_sleeping_pms_stays_asleep(rig) -> None:
    device = PmsDevice(period_s=0.2)
    device.asleep = True
    outcome = rig.scan(device)
    assert outcome.silent
    assert device.asleep and device.accepted == []


@pytest.mark.parametrize(("value", "model", "alternatives"), [
    (62.1, "modbus_noise_rs_zs_n01", ()),   # 62.1 m/s is no wind speed
    (12.5, "modbus_wind_rs_fsjt_n01", ()),  # 12.5 dB is below the noise range
    (30.0, "modbus_noise_rs_zs_n01", ("modbus_wind_rs_fsjt_n01",)),  # fits both
])
def test_modbus_read_matched_by_valid_range(rig, value: float, model: str,
                                            alternatives: tuple[str, ...]) -> None:
    profile = load_profile(PROFILES / "modbus_noise_rs_zs_n01.toml")
    device = ModbusSlave.from_profile(profile, values={"sound_level": value}, clock=rig.clock)
    outcome = rig.scan(device)
    finding = outcome.finding
    assert finding is not None and finding.baudrate == 4800
    assert (finding.model, finding.identity.alternatives) == (model, alternatives)
    assert device.requests == [bytes.fromhex("01 03 00 00 00 01 84 0A")]  # one shared read
    assert device.exceptions_sent == 0


def test_modbus_exception_means_unknown_register_map(rig) -> None:
    device = ModbusSlave(registers=({"quantity": "sound_level", "address": 14, "scale": 0.1},),
                         clock=rig.clock)
    outcome = rig.scan(device)
    finding = outcome.finding
    assert finding is not None and finding.model is None
    assert finding.identity.state is State.UNKNOWN
    assert "ILLEGAL DATA ADDRESS" in finding.identity.notes[0]
    assert all(request[1] == 0x03 for request in device.requests)


class Chatter:
    """A device sending bytes in no known format (wrong rate, other protocol)."""

    def receive(self, data: bytes) -> list[bytes]:
        return []

    def poll(self, now: float) -> list[bytes]:
        return [b"hello\r\n"]

    def corrupt(self, frame: bytes) -> bytes:
        return frame


def test_unknown_chatter_is_an_unknown_device(rig) -> None:
    outcome = rig.scan(Chatter())
    assert outcome.finding is not None and outcome.finding.model is None
    assert "no known frame format" in outcome.finding.identity.notes[0]


def test_silent_port_is_bounded_in_time(rig) -> None:
    class Silent(Chatter):
        def poll(self, now: float) -> list[bytes]:
            return []

    started = rig.clock()
    outcome = rig.scan(Silent())
    elapsed = rig.clock() - started
    assert outcome.silent
    timing = rig.timing
    budget = sum(timing.listen_s(p.families) for p in PLANS) + 2 * timing.reply_timeout_s \
        + timing.modbus_timeout_s
    assert elapsed < budget + 3.0  # bounded, not hanging: generous for a loaded CI machine


def test_missing_port_is_a_problem(tmp_path: Path) -> None:
    outcome = scan_port(open_serial, PortChoice(str(tmp_path / "ttyNONE")), PLANS, FAST)
    assert outcome.problem is not None and "cannot open" in outcome.problem.message
