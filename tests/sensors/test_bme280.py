"""BME280/BMP280: datasheet integer compensation vectors, register traffic, emulator round trips.

Vectors: the BMP280 datasheet §3.12 example (T/P) and pimoroni/bme280-python's test set
(with humidity). Expected integers are the datasheet *integer* code's results.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config.profiles import all_profiles
from agent.emulators import registry as emulator_registry
from agent.emulators.bme280 import (
    BOSCH_EXAMPLE_ADC,
    BOSCH_EXAMPLE_CALIB_TP,
    PIMORONI_ADC,
    PIMORONI_CALIB_H,
    PIMORONI_CALIB_TP,
    Bme280Device,
    make_bme280,
    make_bmp280,
)
from agent.errors import BusTimeout, FrameError, SensorError
from agent.sensors import registry
from agent.sensors.bme280 import (
    Bme280,
    Bme280Options,
    Bmp280,
    compensate_humidity,
    compensate_pressure,
    compensate_temperature,
    max_measurement_ms,
    parse_calibration,
    parse_raw,
)
from tests.clock import FakeClock
from tests.sensors.rigs import on_bus

ADDRESS = 0x76
FAST = Bme280Options(timeout_s=0.02)


class Recorder:
    """Logs every write between the bus and the emulated chip; can drop chosen writes."""

    def __init__(self, device: Bme280Device, drop_register: int | None = None) -> None:
        self.device = device
        self.drop_register = drop_register
        self.writes: list[bytes] = []

    def on_write(self, data: bytes) -> None:
        self.writes.append(data)
        if len(data) == 2 and data[0] == self.drop_register:
            return  # the write is lost on the way (a glitch on the wire)
        self.device.on_write(data)

    def on_read(self, length: int) -> bytes:
        return self.device.on_read(length)


def rig(device: Bme280Device, driver_type: type[Bme280] = Bme280,
        options: Bme280Options = FAST, drop_register: int | None = None):
    recorder = Recorder(device, drop_register)
    _, chip = on_bus(recorder, ADDRESS)
    return recorder, driver_type(chip, options)


# -- datasheet integer compensation --------------------------------------------------

def test_bosch_datasheet_example() -> None:
    cal = parse_calibration(BOSCH_EXAMPLE_CALIB_TP)
    assert (cal.dig_T1, cal.dig_T2, cal.dig_T3) == (27504, 26435, -1000)
    assert (cal.dig_P1, cal.dig_P2, cal.dig_P9) == (36477, -10685, 6000)
    adc_p, adc_t, adc_h = parse_raw(bytes.fromhex("655AC07EED00"))  # registers 0xF7..0xFC
    assert (adc_t, adc_p, adc_h) == (BOSCH_EXAMPLE_ADC["adc_T"], BOSCH_EXAMPLE_ADC["adc_P"], None)
    centi_c, t_fine = compensate_temperature(adc_t, cal)
    assert (centi_c, t_fine) == (2508, 128422)  # 25.08 °C
    q24_8 = compensate_pressure(adc_p, t_fine, cal)
    assert q24_8 == 25767233
    assert q24_8 / 256 == pytest.approx(100653.27, abs=0.05)  # datasheet: 100653.27 Pa


def test_humidity_set_from_pimoroni_tests() -> None:
    cal = parse_calibration(PIMORONI_CALIB_TP, PIMORONI_CALIB_H)
    assert (cal.dig_H1, cal.dig_H2, cal.dig_H3, cal.dig_H4, cal.dig_H5, cal.dig_H6) == \
        (75, 376, 0, 286, 50, 30)
    adc_p, adc_t, adc_h = parse_raw(bytes.fromhex("4FCA008132707649"))
    assert (adc_t, adc_p, adc_h) == (PIMORONI_ADC["adc_T"], PIMORONI_ADC["adc_P"],
                                     PIMORONI_ADC["adc_H"])
    centi_c, t_fine = compensate_temperature(adc_t, cal)
    assert (centi_c, t_fine) == (2479, 126911)
    assert compensate_pressure(adc_p, t_fine, cal) == 25769253  # 100661.145 Pa
    q22_10 = compensate_humidity(adc_h, t_fine, cal)
    assert q22_10 == 70317
    assert q22_10 / 1024 == pytest.approx(68.67, abs=0.01)  # pimoroni's double: 68.66997


def test_h4_h5_nibble_packing_sign_extends() -> None:
    # E4=0xF0, E5=0x8F, E6=0xFE: H4 = 0xF0F and H5 = 0xFE8 as signed 12-bit numbers.
    cal = parse_calibration(PIMORONI_CALIB_TP, bytes.fromhex("780100F08FFE1E"))
    assert (cal.dig_H4, cal.dig_H5) == (-241, -24)


def test_humidity_is_clamped_to_0_and_100_percent() -> None:
    cal = parse_calibration(PIMORONI_CALIB_TP, PIMORONI_CALIB_H)
    _, t_fine = compensate_temperature(PIMORONI_ADC["adc_T"], cal)
    assert compensate_humidity(0, t_fine, cal) == 0
    assert compensate_humidity(0xFFFF, t_fine, cal) == 102400  # 100.0 %RH in Q22.10


def test_blank_calibration_and_bad_lengths_are_rejected() -> None:
    with pytest.raises(SensorError, match="blank"):
        parse_calibration(bytes(26), bytes(7))
    with pytest.raises(FrameError):
        parse_calibration(PIMORONI_CALIB_TP[:-1])
    with pytest.raises(FrameError):
        parse_raw(bytes(7))


def test_options_accept_only_datasheet_oversampling() -> None:
    with pytest.raises(ValueError, match="osrs_t"):
        Bme280Options(osrs_t=3)
    assert max_measurement_ms(1, 1, 1) == pytest.approx(9.3)  # appendix B, all ×1
    assert max_measurement_ms(1, 1, None) == pytest.approx(6.425)


# -- emulator round trips (emulator inverts the double formulas; driver uses integers) --

@settings(max_examples=60, deadline=None)
@given(temperature=st.floats(-40.0, 85.0), pressure=st.floats(300.0, 1100.0),
       humidity=st.floats(0.0, 100.0))
def test_physical_to_raw_to_physical_over_the_full_range(
        temperature: float, pressure: float, humidity: float) -> None:
    device = Bme280Device()
    cal = parse_calibration(PIMORONI_CALIB_TP, PIMORONI_CALIB_H)
    adc_t, adc_p, adc_h = device.raw_for(temperature, pressure, humidity)
    centi_c, t_fine = compensate_temperature(adc_t, cal)
    assert centi_c / 100 == pytest.approx(temperature, abs=0.011)
    # 20-bit pressure step (~0.2 Pa) plus the int64/double disagreement (< 0.6 Pa).
    assert compensate_pressure(adc_p, t_fine, cal) / 25600 == pytest.approx(pressure, abs=0.008)
    # One 16-bit humidity ADC step is worth up to ~0.011 %RH here (hot and humid: 20 000
    # random points peaked at 0.0109), plus the 1/1024 %RH output step.
    assert compensate_humidity(adc_h, t_fine, cal) / 1024 == pytest.approx(humidity, abs=0.012)


@pytest.mark.parametrize(("temperature", "pressure", "humidity"),
                         [(-40.0, 300.0, 0.0), (85.0, 1100.0, 100.0), (21.37, 1013.25, 47.5)])
@pytest.mark.parametrize("oversampling", [1, 16])
def test_driver_reads_back_what_the_emulator_was_set_to(
        temperature: float, pressure: float, humidity: float, oversampling: int) -> None:
    options = Bme280Options(osrs_t=oversampling, osrs_p=oversampling, osrs_h=oversampling,
                            timeout_s=0.05)
    device = make_bme280(temperature=temperature, pressure=pressure, humidity=humidity)
    _, driver = rig(device, options=options)
    driver.start()
    values = {r.quantity: r.value for r in driver.read()}
    assert list(values) == list(Bme280.quantities)
    pressure_step_hpa = 0.0262 if oversampling == 1 else 0.0016  # datasheet table (16/20 bit)
    assert values["temperature"] == pytest.approx(temperature, abs=0.011)
    assert values["pressure"] == pytest.approx(pressure, abs=pressure_step_hpa / 2 + 0.006)
    assert values["relative_humidity"] == pytest.approx(humidity, abs=0.01)


def test_register_traffic_and_forced_mode_returns_to_sleep() -> None:
    device = make_bme280()
    recorder, driver = rig(device, options=Bme280Options(osrs_t=2, osrs_p=16, osrs_h=4))
    driver.start()
    recorder.writes.clear()
    driver.read()
    writes = [w for w in recorder.writes if len(w) == 2]
    # ctrl_hum (osrs_h ×4 = 011) strictly before ctrl_meas (010 101 01 = 0x55: forced).
    assert writes == [b"\xf2\x03", b"\xf4\x55"]
    assert b"\xf7" in recorder.writes  # burst read starts at press_msb
    assert device.mode == 0 and device.conversions == 1


def test_bmp280_has_its_own_quantities_and_no_humidity_traffic() -> None:
    device = make_bmp280(temperature=25.08, pressure=1006.53)
    recorder, driver = rig(device, Bmp280)
    driver.start()
    readings = driver.read()
    assert Bmp280.quantities == ("temperature", "pressure")
    assert [r.quantity for r in readings] == list(Bmp280.quantities)
    assert readings[0].value == pytest.approx(25.08, abs=0.011)
    assert readings[1].value == pytest.approx(1006.53, abs=0.02)
    assert not any(w[:1] in (b"\xf2", b"\xe1") for w in recorder.writes)
    assert driver.identify() == {"chip_id": "0x58", "model": "bmp280"}


@pytest.mark.parametrize(("driver_type", "device_factory"),
                         [(Bme280, make_bmp280), (Bmp280, make_bme280)])
def test_chip_id_mismatch_names_both(driver_type: type[Bme280], device_factory) -> None:
    _, driver = rig(device_factory(), driver_type)
    with pytest.raises(SensorError) as info:
        driver.start()
    assert "bme280" in str(info.value) and "bmp280" in str(info.value)
    assert "0x60" in str(info.value) and "0x58" in str(info.value)


# -- faults --------------------------------------------------------------------------

def test_stuck_measuring_bit_times_out() -> None:
    device = make_bme280()
    _, driver = rig(device)
    driver.start()
    device.stuck_measuring = True
    with pytest.raises(BusTimeout, match="measuring") as info:
        driver.read()
    assert info.value.raw == b"\x08"
    device.stuck_measuring = False
    assert len(driver.read()) == 3


def test_lost_ctrl_hum_write_gives_skipped_humidity_as_sensor_error() -> None:
    _, driver = rig(make_bme280(), drop_register=0xF2)
    driver.start()
    with pytest.raises(SensorError, match="skipped"):
        driver.read()


# -- the emulator's own state machine ------------------------------------------------

def test_emulator_latches_ctrl_hum_only_on_ctrl_meas_write_and_flags_measuring() -> None:
    clock = FakeClock()
    _, chip = on_bus(Bme280Device(clock=clock, temperature=20.0, humidity=50.0,
                                  pressure=1000.0), ADDRESS)
    clock.now += 0.01  # past the power-on NVM copy
    chip.write_register(0xF4, b"\x25")  # forced, ×1/×1, ctrl_hum still 0 → humidity skipped
    chip.write_register(0xF2, b"\x01")  # too late for this conversion
    assert chip.read_register(0xF3, 1) == b"\x08"  # measuring
    clock.now += 0.01
    assert chip.read_register(0xF3, 1) == b"\x00"
    assert chip.read_register(0xFD, 2) == b"\x80\x00"
    assert chip.read_register(0xF4, 1) == b"\x24"  # back to sleep
    chip.write_register(0xF4, b"\x25")  # now ctrl_hum = ×1 is latched
    clock.now += 0.01
    assert chip.read_register(0xFD, 2) != b"\x80\x00"


def test_emulator_soft_reset_sets_im_update_and_normal_mode_keeps_converting() -> None:
    clock = FakeClock()
    device = Bme280Device(clock=clock)
    _, chip = on_bus(device, ADDRESS)
    chip.write_register(0xE0, b"\xb6")
    assert chip.read_register(0xF3, 1)[0] & 0x01  # NVM copy running
    clock.now += 0.002
    assert chip.read_register(0xF3, 1) == b"\x00"
    assert chip.read_register(0xD0, 1) == b"\x60"
    chip.write_register(0xF2, b"\x01")
    chip.write_register(0xF4, b"\x27")  # normal mode, t_sb 0.5 ms
    for _ in range(3):
        clock.now += 0.02
        chip.read_register(0xF7, 8)
    assert device.conversions == 3
    assert chip.read_register(0xF4, 1) == b"\x27"  # normal mode stays normal


def test_registered_and_match_profiles() -> None:
    specs = registry()
    assert specs["bme280"].driver_type is Bme280 and specs["bmp280"].driver_type is Bmp280
    profiles = all_profiles()
    for model, driver_type in (("bme280", Bme280), ("bmp280", Bmp280)):
        assert tuple(q.name for q in profiles[model].quantities) == driver_type.quantities
        assert profiles[model].address == ADDRESS
    assert emulator_registry()["bme280"].factory().chip_id == 0x60
    assert emulator_registry()["bmp280"].factory().chip_id == 0x58
