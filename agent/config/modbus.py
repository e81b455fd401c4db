"""What a Modbus RTU transmitter is: its slave id, read function and register tables.

Normally a firmware profile's ``driver = "modbus"`` with its ``[driver_options]``, so a
new transmitter is a profile and no code. The description lives in the config layer
because three readers share it: the driver (``agent.sensors.modbus``) reads the
device it describes, ``scan`` asks every Modbus profile's registers, and the emulator
(``agent.emulators.modbus``) plays the device, which may not import the driver. Each
still decodes or encodes the words its own way, so tests cross-check two readings of
one description.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agent.config.options import DriverOptions

MAX_REGISTERS = 125
"""Largest quantity of registers one read request may ask for (application protocol
V1.1b3, functions 3 and 4)."""
MAX_SLAVE_ID = 247


class RegisterSpec(DriverOptions):
    """Where one quantity lives and how its raw words become a value."""

    quantity: str = Field(
        description="Quantity name; must match a [[quantities]] name in the profile.")
    address: int = Field(
        ge=0, le=65535, description="Protocol address of the first register, 0-based (PLC register "
        "40001 = 0).")
    scale: float = Field(
        default=1.0, description="value = raw * scale + offset, e.g. 0.1 for a register in tenths "
        "of a dB; not 0.")
    offset: float = Field(default=0.0, description="Added after scaling.")
    signed: bool = Field(
        default=False, description="Two's complement (int16 / int32) rather than unsigned.")
    words: Literal[1, 2] = Field(
        default=1, description="1 for 16-bit values, 2 for 32-bit integers or floats.")
    word_order: Literal['big', 'little'] = Field(
        default="big", description="For 2 words: 'big' = high word at the lower address (most "
        "devices), 'little' = low word first ('CDAB').")
    float32: bool = Field(
        default=False, description="The 2 words hold an IEEE-754 float (then signed does not "
        "apply).")

    @model_validator(mode="after")
    def _check(self) -> RegisterSpec:
        if self.address > 0xFFFF - self.words + 1:
            raise ValueError(f"address {self.address} outside 0..{0xFFFF - self.words + 1}")
        if self.float32 and self.words != 2:
            raise ValueError("float32 needs words = 2")
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        return self

    @property
    def end(self) -> int:
        """One past the last register address."""
        return self.address + self.words


class ModbusOptions(DriverOptions):
    """The device description, normally the profile's ``[driver_options]`` table."""

    slave_id: int = Field(
        default=1, ge=1, le=MAX_SLAVE_ID, description="Modbus address of the device, 1..247 "
        "(factory default is usually 1).")
    function: Literal[3, 4] = Field(
        default=3, description="3 = read holding registers, 4 = read input registers.")
    registers: tuple[RegisterSpec, ...] = Field(
        min_length=1, description="What to read: one table per quantity (at least one), each a "
        "[[driver_options.registers]] table in the profile.")
    reply_timeout_s: float = Field(
        default=1.0, gt=0, le=30, description="Seconds to wait for a complete reply; silence "
        "raises BusTimeout.")
    max_registers_per_request: int = Field(
        default=MAX_REGISTERS, ge=1, le=MAX_REGISTERS, description="Cap on registers per request "
        "(1..125); 1 reads every register separately for devices that refuse multi-register "
        "reads.")

    @model_validator(mode="after")
    def _check(self) -> ModbusOptions:
        names = [spec.quantity for spec in self.registers]
        if len(set(names)) != len(names):
            raise ValueError(f"registers: quantity names repeat: {names}")
        return self

    @property
    def quantity_names(self) -> tuple[str, ...]:
        """The quantities this configuration reports, in register-table order."""
        return tuple(spec.quantity for spec in self.registers)
