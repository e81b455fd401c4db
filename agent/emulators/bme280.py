"""Emulated Bosch BME280 / BMP280: a register file with a real conversion state machine.

From the chip's side: register pointer then auto-incrementing reads; writes as
(register, value) pairs; chip id at 0xD0; soft reset (0xE0 ← 0xB6) with the NVM copy
flagged by ``im_update``; ctrl_hum latched only by a ctrl_meas write; forced mode that
sets ``measuring`` for the typical conversion time and then returns to sleep; normal
mode repeating every t_measure + t_standby; 0x80000/0x8000 in skipped channels.

Raw ADC values are made from the chosen physical values by inverting the datasheet's
*double-precision* compensation (BME280 datasheet §8.1) with a bisection over the
ADC range, then quantising to the resolution the oversampling gives (16 + osrs − 1 bits
with the IIR filter off, datasheet §3.4). The driver uses the *integer* code, so a
round trip through the emulator also checks that the two datasheet paths agree.

Calibration sets are published ones with known results: the BMP280 datasheet §3.12
example (T/P only) and the humidity-capable set from pimoroni/bme280-python's tests.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from agent.clock import SYSTEM
from agent.emulators import register

# BMP280 datasheet §3.12 example: 0x88..0xA1 (0xA0/0xA1 do not exist on the BMP280).
BOSCH_EXAMPLE_CALIB_TP = bytes.fromhex(
    "706B436718FC7D8E43D6D00B270B8C00F9FF8C3CF8C67017" "0000")
BOSCH_EXAMPLE_ADC = {"adc_T": 519888, "adc_P": 415148}  # → 25.08 °C, 100653.27 Pa
# pimoroni/bme280-python tests/calibration.py: 0x88..0xA1 and 0xE1..0xE7.
PIMORONI_CALIB_TP = bytes.fromhex("696D36643200E99802D6D00B231688FFF9FF8C3CF8C67017004B")
PIMORONI_CALIB_H = bytes.fromhex("780100112E031E")
PIMORONI_ADC = {"adc_T": 529191, "adc_P": 326816, "adc_H": 30281}

_ID, _RESET, _CTRL_HUM, _STATUS, _CTRL_MEAS, _CONFIG = 0xD0, 0xE0, 0xF2, 0xF3, 0xF4, 0xF5
_DATA = 0xF7
_RESET_VALUES = {_CTRL_HUM: 0, _CTRL_MEAS: 0, _CONFIG: 0}
_SKIPPED_DATA = bytes([0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00])
_NVM_COPY_S = 0.001
_STANDBY_S = (0.0005, 0.0625, 0.125, 0.25, 0.5, 1.0, 0.010, 0.020)  # t_sb codes 0..7
_OVERSAMPLING = (0, 1, 2, 4, 8, 16, 16, 16)  # osrs codes 0..7


def _s8(byte: int) -> int:
    return byte - 256 if byte & 0x80 else byte


class _FloatCompensation:
    """The datasheet's double-precision formulas, used device-side to invert raw → physical."""

    def __init__(self, tp: bytes, h: bytes) -> None:
        (self.t1, self.t2, self.t3, self.p1, self.p2, self.p3, self.p4, self.p5, self.p6,
         self.p7, self.p8, self.p9, self.h1) = struct.unpack("<HhhHhhhhhhhhxB", tp)
        self.h2 = struct.unpack("<h", h[0:2])[0]
        self.h3 = h[2]
        self.h4 = (_s8(h[3]) << 4) | (h[4] & 0x0F)
        self.h5 = (_s8(h[5]) << 4) | (h[4] >> 4)
        self.h6 = _s8(h[6])

    def temperature(self, adc_t: int) -> tuple[float, int]:
        var1 = (adc_t / 16384.0 - self.t1 / 1024.0) * self.t2
        var2 = (adc_t / 131072.0 - self.t1 / 8192.0) ** 2 * self.t3
        return (var1 + var2) / 5120.0, int(var1 + var2)

    def pressure(self, adc_p: int, t_fine: int) -> float:
        var1 = t_fine / 2.0 - 64000.0
        var2 = var1 * var1 * self.p6 / 32768.0
        var2 = var2 + var1 * self.p5 * 2.0
        var2 = var2 / 4.0 + self.p4 * 65536.0
        var1 = (self.p3 * var1 * var1 / 524288.0 + self.p2 * var1) / 524288.0
        var1 = (1.0 + var1 / 32768.0) * self.p1
        p = 1048576.0 - adc_p
        p = (p - var2 / 4096.0) * 6250.0 / var1
        var1 = self.p9 * p * p / 2147483648.0
        var2 = p * self.p8 / 32768.0
        return p + (var1 + var2 + self.p7) / 16.0

    def humidity(self, adc_h: int, t_fine: int) -> float:
        v = t_fine - 76800.0
        v = (adc_h - (self.h4 * 64.0 + self.h5 / 16384.0 * v)) * (
            self.h2 / 65536.0 * (1.0 + self.h6 / 67108864.0 * v * (1.0 + self.h3 / 67108864.0 * v)))
        v = v * (1.0 - self.h1 * v / 524288.0)
        return min(100.0, max(0.0, v))


def _invert(function: Callable[[int], float], target: float, bits: int, rising: bool) -> int:
    """The ADC code in [0, 2^bits) whose value is nearest ``target`` (``function`` monotone)."""
    low, high = 0, (1 << bits) - 1
    while low < high:  # first code at or past the target
        mid = (low + high) // 2
        value = function(mid)
        if (value < target) if rising else (value > target):
            low = mid + 1
        else:
            high = mid
    candidates = (low - 1, low) if low else (low,)
    return min(candidates, key=lambda code: abs(function(code) - target))


class Bme280Device:
    """Register-level BME280 (chip id 0x60) or BMP280 (0x58, no humidity)."""

    def __init__(self, *, chip_id: int = 0x60, calib_tp: bytes = PIMORONI_CALIB_TP,
                 calib_h: bytes = PIMORONI_CALIB_H, temperature: float | None = None,
                 humidity: float | None = None, pressure: float | None = None,
                 seed: int = 5, clock: Callable[[], float] = SYSTEM.monotonic) -> None:
        self.chip_id = chip_id
        self.has_humidity = chip_id == 0x60
        self.walk = temperature is None and humidity is None and pressure is None
        self.temperature = 18.0 if temperature is None else temperature  # °C
        self.humidity = 60.0 if humidity is None else humidity  # %RH
        self.pressure = 1013.0 if pressure is None else pressure  # hPa
        self.clock = clock
        self.conversions = 0
        self.stuck_measuring = False
        """Fault: the measuring bit never clears and no data arrives."""
        self._rng = random.Random(seed)
        self._math = _FloatCompensation(calib_tp, calib_h)
        self._regs = bytearray(256)
        self._regs[0x88:0x88 + len(calib_tp)] = calib_tp
        self._regs[0xE1:0xE1 + len(calib_h)] = calib_h
        self._pointer = 0
        self._osrs_h = 0
        self._busy_until = 0.0  # NVM copy after reset
        self._conversion: tuple[float, float] | None = None  # (start, end)
        self.power_cycle()

    # -- state --------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power-on/soft-reset state: sleep mode, data registers at their reset value."""
        for reg, value in _RESET_VALUES.items():
            self._regs[reg] = value
        self._regs[_ID] = self.chip_id
        self._regs[_DATA:_DATA + 8] = _SKIPPED_DATA
        self._osrs_h = 0
        self._conversion = None
        self._busy_until = self.clock() + _NVM_COPY_S

    @property
    def mode(self) -> int:
        return self._regs[_CTRL_MEAS] & 0b11

    def raw_for(self, temperature: float, pressure: float, humidity: float,
                osrs_t: int = 16, osrs_p: int = 16) -> tuple[int, int, int]:
        """(adc_T, adc_P, adc_H) the chip would produce for these values at this oversampling."""
        adc_t = self._quantise(_invert(lambda c: self._math.temperature(c)[0], temperature,
                                       20, rising=True), osrs_t)
        t_fine = self._math.temperature(adc_t)[1]
        adc_p = self._quantise(_invert(lambda c: self._math.pressure(c, t_fine) / 100.0,
                                       pressure, 20, rising=False), osrs_p)
        adc_h = 0x8000
        if self.has_humidity:
            adc_h = _invert(lambda c: self._math.humidity(c, t_fine), humidity, 16, rising=True)
        return adc_t, adc_p, adc_h

    # -- EmulatedI2CDevice --------------------------------------------------------
    def on_write(self, data: bytes) -> None:
        self._advance()
        if not data:
            return
        self._pointer = data[0]
        for index in range(0, len(data) - 1, 2):  # (register, value) pairs
            self._write(data[index], data[index + 1])

    def on_read(self, length: int) -> bytes:
        self._advance()
        out = bytearray()
        for offset in range(length):
            reg = (self._pointer + offset) & 0xFF
            out.append(self._status() if reg == _STATUS else self._regs[reg])
        return bytes(out)

    # -- internals ----------------------------------------------------------------
    def _write(self, reg: int, value: int) -> None:
        if reg == _RESET:
            if value == 0xB6:
                self.power_cycle()
        elif reg == _CTRL_HUM and self.has_humidity:
            self._regs[reg] = value & 0x07
        elif reg == _CONFIG:
            self._regs[reg] = value & 0xFD
        elif reg == _CTRL_MEAS:
            self._regs[reg] = value
            self._osrs_h = self._regs[_CTRL_HUM] if self.has_humidity else 0
            now = self.clock()
            self._conversion = None if self.mode == 0 else (now, now + self._measure_s())
        # every other register is read-only; the chip ignores such writes

    def _status(self) -> int:
        now = self.clock()
        measuring = self.stuck_measuring or (
            self._conversion is not None and self._conversion[0] <= now < self._conversion[1])
        return (0x08 if measuring else 0) | (0x01 if now < self._busy_until else 0)

    def _advance(self) -> None:
        """Finish every conversion whose end time has passed (lazy, clock-driven)."""
        now = self.clock()
        while self._conversion is not None and not self.stuck_measuring:
            start, end = self._conversion
            if now < end:
                return
            self._convert()
            if self.mode in (0b01, 0b10):  # forced: one conversion, then sleep
                self._regs[_CTRL_MEAS] &= ~0b11
                self._conversion = None
            else:  # normal: cycles repeat every t_measure + t_standby
                duration = end - start
                period = duration + _STANDBY_S[self._regs[_CONFIG] >> 5]
                start += (int((now - end) // period) + 1) * period  # first cycle not yet done
                self._conversion = (start, start + duration)

    def _measure_s(self) -> float:
        """Typical conversion time (datasheet appendix B, t_measure,typ)."""
        osrs_t, osrs_p, osrs_h = (_OVERSAMPLING[code] for code in self._codes())
        total = 1.0 + 2.0 * osrs_t
        total += 2.0 * osrs_p + 0.5 if osrs_p else 0.0
        total += 2.0 * osrs_h + 0.5 if osrs_h else 0.0
        return total / 1000.0

    def _codes(self) -> tuple[int, int, int]:
        ctrl = self._regs[_CTRL_MEAS]
        return (ctrl >> 5) & 7, (ctrl >> 2) & 7, self._osrs_h

    def _quantise(self, adc: int, osrs: int) -> int:
        filtered = (self._regs[_CONFIG] >> 2) & 7
        bits = 20 if filtered else 15 + min(osrs.bit_length(), 5)
        step = 1 << (20 - bits)
        return min((adc + step // 2) // step * step, (1 << 20) - step)

    def _convert(self) -> None:
        self.conversions += 1
        if self.walk:
            self.temperature = min(35.0, max(-5.0, self.temperature + self._rng.gauss(0, 0.03)))
            self.humidity = min(95.0, max(10.0, self.humidity + self._rng.gauss(0, 0.1)))
            self.pressure = min(1040.0, max(980.0, self.pressure + self._rng.gauss(0, 0.02)))
        code_t, code_p, code_h = self._codes()
        adc_t, adc_p, adc_h = self.raw_for(self.temperature, self.pressure, self.humidity,
                                           _OVERSAMPLING[code_t], _OVERSAMPLING[code_p])
        data = bytearray(_SKIPPED_DATA)
        if code_p:
            data[0:3] = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4])
        if code_t:
            data[3:6] = bytes([adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4])
        if code_h and self.has_humidity:
            data[6:8] = adc_h.to_bytes(2, "big")
        self._regs[_DATA:_DATA + 8] = data


@register("bme280")
def make_bme280(temperature: float | None = None, humidity: float | None = None,
                pressure: float | None = None, seed: int = 5) -> Bme280Device:
    """A BME280 with pimoroni's published calibration and slowly drifting air."""
    return Bme280Device(temperature=temperature, humidity=humidity, pressure=pressure, seed=seed)


@register("bmp280")
def make_bmp280(temperature: float | None = None, pressure: float | None = None,
                seed: int = 6) -> Bme280Device:
    """A BMP280 with the Bosch datasheet example calibration (no humidity channel)."""
    return Bme280Device(chip_id=0x58, calib_tp=BOSCH_EXAMPLE_CALIB_TP, calib_h=bytes(7),
                        temperature=temperature, pressure=pressure, seed=seed)
