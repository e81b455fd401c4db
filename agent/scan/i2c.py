"""Read-only identification of the devices on one I2C bus.

For every address a firmware profile uses (its address and alt_addresses) the
scan first sends an address-only write, the SMBus "quick write" that
``i2cdetect`` uses outside 0x30-0x37 and 0x50-0x5F: START, address+W, STOP, no
data byte, so no chip can take it as a command. Some adapters cannot send a
zero-length message and some chips (and the emulators) NACK an empty write, so
a NACK there does not end the probing: the identity reads below are harmless to
an absent device (nobody acknowledges them) and decide presence as well.

Then the families whose profiles use the address try their identity reads, in
the order of :data:`FAMILY_ORDER`; the first that recognises the device wins.
Every command below only reads; none starts or stops a measurement, writes a
setting, resets or heats. Each is what the driver's own ``identify()`` sends
(composed here) unless marked "scan":

============ ======= ========================================================
family       address commands sent, in order, and why each is read-only
============ ======= ========================================================
sen5x        0x69    0xD014 get product name (scan: tells SEN50/54/55 from an
                     SPS30, which NACKs it), then identify(): 0xD100 get
                     version, 0xD014 again, 0xD033 get serial number. All are
                     "read" commands in the SEN5x command table, allowed in
                     every state.
sps30        0x69    0xD002 read product type (scan: "0008xxxx" marks an SPS30),
                     then identify(): 0xD033 read serial, 0xD100 read firmware.
                     Info reads, allowed idle or measuring. An SPS30 asleep
                     answers nothing and is not found (waking it would change
                     its state).
scd4x        0x62    identify(): 0x3682 get_serial_number; if answered, (scan)
                     0x202F get_sensor_variant (SCD40/SCD41). Both are idle-only
                     reads; a measuring sensor refuses them, and then (scan)
                     0xE4B8 get_data_ready_status, allowed while measuring and
                     not clearing the data, shows it is there: "present
                     (measuring; identity not read)". Measurement is never
                     stopped; an SCD41 in power_down is not woken (not found).
scd30        0x61    identify(): 0xD100 read firmware version.
sht3x        0x44/45 identify(): 0x3682 read serial number (0x3780 if refused), 0xF32D read status
                     register. Tried before the SHT4x so an SHT3x never sees a
                     one-byte write (it would set its "command failed" flag).
sht4x        0x44-46 identify(): 0x89 read serial number.
bmx280       0x76/77 identify(): register pointer 0xD0, read 1 byte (chip id:
                     0x60 BME280, 0x58 BMP280, 0x61 BME680 - no driver).
dnms         0x55    identify(): 0x0002 READ_VERSION (never 0x0001 RESET).
pcba_dbm     0x48    (scan) register pointer 0x00, read VERSION; only if it is
                     a known PCB Artists value then identify(): VERSION again and
                     ID3..ID0 (0x01-0x04). Register reads only move the pointer.
============ ======= ========================================================

A family whose answer does not fit (wrong product name, chip id, version
string) or is corrupt marks the address as occupied; when no family fits the
device is reported as "unknown device" rather than guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agent.bus.i2c import I2CDevice
from agent.errors import AgentError, BusError, CrcError, FrameError, NackError, SensorError
from agent.scan.findings import Finding, Identity, State
from agent.sensors import registry
from agent.sensors._sensirion import SensirionCommand
from agent.sensors.pcba_dbm import KNOWN_VERSIONS, REG_VERSION

log = logging.getLogger(__name__)

# Scan-only commands (the rest come from the drivers' identify()).
_SEN5X_PRODUCT_NAME = SensirionCommand(0xD014, "get product name", 0.050, 16)
_SPS30_PRODUCT_TYPE = SensirionCommand(0xD002, "read product type", 0.005, 4)
_SCD4X_VARIANT = SensirionCommand(0x202F, "get_sensor_variant", 0.001, 1)
_SCD4X_DATA_READY = SensirionCommand(0xE4B8, "get_data_ready_status", 0.001, 1)
_SCD4X_VARIANTS = {0x0: "scd40", 0x1: "scd41", 0x2: "scd42", 0x5: "scd43"}
"""get_sensor_variant bits 15..12 (SCD4x datasheet, get_sensor_variant)."""
_BMX_CHIP_NAMES = {0x60: "bme280", 0x58: "bmp280", 0x61: "bme680"}

READ_ONLY_WRITES: dict[str, frozenset[bytes]] = {
    "sen5x": frozenset({b"\xd0\x14", b"\xd1\x00", b"\xd0\x33"}),
    "sps30": frozenset({b"\xd0\x02", b"\xd0\x33", b"\xd1\x00"}),
    "scd4x": frozenset({b"\x36\x82", b"\x20\x2f", b"\xe4\xb8"}),
    "scd30": frozenset({b"\xd1\x00"}),
    "sht3x": frozenset({b"\x36\x82", b"\x37\x80", b"\xf3\x2d"}),
    "sht4x": frozenset({b"\x89"}),
    "bmx280": frozenset({b"\xd0"}),
    "dnms": frozenset({b"\x00\x02"}),
    "pcba_dbm": frozenset({b"\x00", b"\x01"}),
}
"""Every write each family's probe may put on the wire besides the empty
address-only write: the documented list above, as bytes, for tests and audits."""

FAMILY_OF: dict[str, str] = {
    "sen50": "sen5x", "sen54": "sen5x", "sen55": "sen5x", "sps30": "sps30",
    "scd40": "scd4x", "scd41": "scd4x", "scd30": "scd30", "sht3x": "sht3x",
    "sht4x": "sht4x", "bme280": "bmx280", "bmp280": "bmx280", "dnms": "dnms",
    "pcba_dbm": "pcba_dbm",
}
"""Which identity probe serves each I2C profile; a profile not listed is only
detected by the address-only write."""

FAMILY_ORDER = ("sen5x", "sps30", "scd4x", "scd30", "sht3x", "sht4x", "bmx280", "dnms",
                "pcba_dbm")


class Mismatch(AgentError):
    """Something answered, but not as this family does."""


def _identify(model: str, device: I2CDevice) -> dict[str, str]:
    """The registered driver's own identify(), on a driver that is built but never started."""
    spec = registry()[model]
    driver: Any = spec.build(device, spec.options_type())
    return dict(driver.identify())


def probe_sen5x(device: I2CDevice) -> Identity:
    product = _ascii(_SEN5X_PRODUCT_NAME.run(device))
    model = product.strip().lower()
    if not model.startswith("sen5"):
        raise Mismatch(f"product name {product!r} is not a SEN5x")
    facts = _identify("sen55", device)
    return Identity(model, facts)


def probe_sps30(device: I2CDevice) -> Identity:
    product = _ascii(_SPS30_PRODUCT_TYPE.run(device))
    if not product.startswith("0008"):
        raise Mismatch(f"product type {product!r} is not an SPS30's (0008xxxx)")
    return Identity("sps30", _identify("sps30", device))


def probe_scd4x(device: I2CDevice) -> Identity:
    try:
        facts = _identify("scd40", device)
    except (NackError, CrcError, FrameError):
        # Refused (or answered with filler): absent, asleep (SCD41 power_down), or
        # measuring. Only the last answers get_data_ready_status with a valid word;
        # a NackError or CrcError here means "not an SCD4x that is awake".
        _SCD4X_DATA_READY.run(device)
        return Identity("scd40", state=State.MEASURING, alternatives=("scd41",),
                        notes=("present (measuring; identity not read)",))
    try:
        word = _SCD4X_VARIANT.run(device)[0]
    except NackError:
        return Identity("scd40", facts, alternatives=("scd41",),
                        notes=("variant not readable (older firmware): SCD40 or SCD41",))
    model = _SCD4X_VARIANTS.get(word >> 12)
    if model is None:
        raise Mismatch(f"SCD4x variant word 0x{word:04x} unknown")
    return Identity(model, {**facts, "variant": model.upper()})


def probe_scd30(device: I2CDevice) -> Identity:
    return Identity("scd30", _identify("scd30", device))


def probe_sht3x(device: I2CDevice) -> Identity:
    return Identity("sht3x", _identify("sht3x", device))


def probe_sht4x(device: I2CDevice) -> Identity:
    return Identity("sht4x", _identify("sht4x", device))


def probe_bmx280(device: I2CDevice) -> Identity:
    facts = _identify("bme280", device)
    chip_id = int(facts["chip_id"], 16)
    name = _BMX_CHIP_NAMES.get(chip_id)
    if name is None:
        raise Mismatch(f"chip id 0x{chip_id:02x} is not a Bosch BME/BMP")
    return Identity(name, {"chip_id": facts["chip_id"]})


def probe_dnms(device: I2CDevice) -> Identity:
    try:
        facts = _identify("dnms", device)
    except SensorError as exc:  # a version string not starting with "DNMS"
        raise Mismatch(str(exc)) from exc
    return Identity("dnms", facts)


def probe_pcba_dbm(device: I2CDevice) -> Identity:
    version = device.read_register(REG_VERSION, 1)[0]
    if version not in KNOWN_VERSIONS:
        raise Mismatch(f"VERSION register 0x{version:02x} is not a PCB Artists value "
                       "(ADS1115 or TMP102?)")
    facts = _identify("pcba_dbm", device)
    return Identity("pcba_dbm", facts,
                    notes=("identified by its VERSION register (no checksum to confirm)",))


PROBES: dict[str, Callable[[I2CDevice], Identity]] = {
    "sen5x": probe_sen5x, "sps30": probe_sps30, "scd4x": probe_scd4x, "scd30": probe_scd30,
    "sht3x": probe_sht3x, "sht4x": probe_sht4x, "bmx280": probe_bmx280, "dnms": probe_dnms,
    "pcba_dbm": probe_pcba_dbm,
}


def quick_write(device: I2CDevice) -> bool | None:
    """Address-only write: True acknowledged, False not, None when the adapter cannot say."""
    try:
        device.write(b"")
    except NackError:
        return False
    except BusError as exc:  # e.g. EOPNOTSUPP from an adapter without zero-length writes
        log.debug("i2c 0x%02x: address-only write not possible: %s", device.address, exc)
        return None
    return True


def families_for(models: Iterable[str]) -> list[str]:
    """The probe families that serve these profile models, in probing order."""
    wanted = {FAMILY_OF[m] for m in models if m in FAMILY_OF}
    return [family for family in FAMILY_ORDER if family in wanted]


def probe_address(device: I2CDevice, models: Sequence[str]) -> Identity | None:
    """Identify the device at ``device.address``; None when nothing is there.

    ``models`` are the profile models that use this address. A verdict naming a
    model outside them (an SCD43, a BME680) is kept as facts of an unknown device.
    """
    acked = quick_write(device)
    answered = False
    notes: list[str] = []
    for family in families_for(models):
        try:
            identity = PROBES[family](device)
        except NackError:
            continue  # nobody there, or a different chip that refuses this family's command
        except Mismatch as exc:
            answered = True
            notes.append(str(exc))
            continue
        except (CrcError, FrameError, SensorError) as exc:
            answered = True
            notes.append(f"{family} reply rejected: {exc}")
            continue
        except BusError as exc:
            notes.append(f"{family}: {exc}")
            continue
        if identity.model in models:
            return Identity(identity.model, identity.facts, identity.state,
                            tuple(m for m in identity.alternatives if m in models),
                            identity.notes)
        label = (identity.model or "?").upper()
        return Identity(None, identity.facts, State.UNKNOWN,
                        notes=(f"{label}: no firmware profile for this model yet",))
    if acked or answered:
        untried = [m for m in models if m not in FAMILY_OF]
        if untried:
            notes.append(f"no identity probe for {', '.join(untried)}")
        return Identity(None, state=State.UNKNOWN, alternatives=tuple(models),
                        notes=("unknown device", *notes))
    return None


def scan_bus(open_device: Callable[[int], I2CDevice], bus: int | str,
             targets: dict[int, list[str]]) -> list[Finding]:
    """Probe every target address on one bus, lowest address first."""
    findings = []
    for address in sorted(targets):
        identity = probe_address(open_device(address), targets[address])
        if identity is not None:
            log.info("i2c-%s 0x%02x: %s", bus, address, identity.model or "unknown device")
            findings.append(Finding("i2c", identity, bus=bus, address=address))
    return findings


def _ascii(words: list[int]) -> str:
    """Sensirion ASCII replies: two characters per word, NUL-terminated."""
    text = b"".join(word.to_bytes(2, "big") for word in words)
    return text.split(b"\x00", 1)[0].decode("ascii", errors="replace")
