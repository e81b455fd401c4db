"""Passive-first identification of the device on one serial port.

Order and time limits, per port (ports are scanned in parallel):

1. **Listen** at each bit rate a serial profile uses, sending nothing: rates of
   protocols that talk by themselves first (9600: SDS011 and PMS in active
   mode), then the others (4800: Modbus). The window is long enough for one
   unsolicited frame: 1.5 s for the SDS011 (one frame a second, "1+0.5 s"),
   3.0 s for the PMS family (one frame per 2.3 s in its stable sub-mode),
   0.25 s at a rate whose protocols never talk unasked. It ends early at the
   first frame whose format and checksum fit (SDS011 ``AA C0 ... AB`` with its
   8-bit sum, PMS ``42 4D 00 1C`` with its 16-bit sum). A recognised SDS011 is
   then asked its firmware (below); a recognised PMS gets nothing.
2. Only if every rate was silent or unrecognised, **ask** with read-only
   queries, each awaited at most ``reply_timeout_s`` (1.0 s; Modbus 0.5 s):

   * SDS011 (driver identify()): function 7 "query firmware version" (data 2 =
     0 read, broadcast id FFFF), then (scan) function 2 "query reporting mode"
     with data 2 = 0, which reads the mode and never sets it. A sleeping SDS011
     answers neither (only the sleep/work *set* command wakes it; not sent).
   * PMS: the passive-read command ``42 4D E2 00 00 01 71``. Reaching this step
     means the sensor sent nothing while listened to, so it is in passive mode
     (or asleep), where this only asks for one frame; mode, sleep and wake
     commands are never sent.
   * Modbus: one read of each profile's registers with its own function 3 or 4
     and slave id (the driver's read()), at the profile's rate. Profiles
     reading the same registers share one request; the answer is matched to
     the profiles whose valid ranges the decoded values fit.

A silent port costs 3.0 + 1.0 + 1.0 s at 9600 and 0.25 + 0.5 s at 4800. SDS011,
PMS and Modbus framings share no header bytes, so each protocol's query is
noise to the others (a Modbus slave drops it on its CRC, the SDS011 and PMS on
their headers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, replace

from pydantic import ValidationError

from agent.bus.serial import SerialLink
from agent.config.modbus import ModbusOptions
from agent.config.profiles import Profile
from agent.errors import BusError, BusTimeout, CrcError, FrameError
from agent.scan.findings import Finding, Identity, Problem, State
from agent.sensors import pms5003, sds011
from agent.sensors.modbus import ModbusException, ModbusRtu

log = logging.getLogger(__name__)

FAMILY_OF: dict[str, str] = {"sds011": "sds011", "pms5003": "pms", "pms7003": "pms",
                             "pmsa003": "pms"}
"""Serial profiles with a recognisable frame format; ``driver = "modbus"`` ones are
handled as the "modbus" family."""
_TALKERS = frozenset({"sds011", "pms"})
_SDS011_FRAME = 10
_PMS_FRAME = 32
_PMS_DATA_HEADER = b"\x42\x4d\x00\x1c"
_READ_CHUNK = 256
_SDS011_MODES = {0: "active reporting mode",
                 1: "query reporting mode (as the agent leaves it)"}
PMS_NOTE = "PMS5003, PMS7003 and PMSA003 speak one protocol: use the model printed on it"

OpenLink = Callable[[str, int, float], SerialLink]


@dataclass(frozen=True)
class SerialTiming:
    """Listening windows and reply timeouts, in seconds."""

    sds011_listen_s: float = 1.5
    pms_listen_s: float = 3.0
    quiet_listen_s: float = 0.25
    reply_timeout_s: float = 1.0
    modbus_timeout_s: float = 0.5
    poll_s: float = 0.05
    """Port read timeout while listening: how soon a recognised frame ends the window."""

    def listen_s(self, families: Iterable[str]) -> float:
        windows = {"sds011": self.sds011_listen_s, "pms": self.pms_listen_s}
        return max((windows[f] for f in families if f in windows), default=self.quiet_listen_s)


@dataclass(frozen=True)
class ModbusCandidate:
    """A Modbus profile: how to read it and the valid range of each quantity."""

    model: str
    options: ModbusOptions
    ranges: dict[str, tuple[float, float]]


@dataclass(frozen=True)
class BaudPlan:
    """What to expect, and to ask, at one bit rate."""

    baudrate: int
    families: frozenset[str]
    pms_models: tuple[str, ...] = ()
    modbus: tuple[ModbusCandidate, ...] = ()


@dataclass(frozen=True)
class PortChoice:
    """One physical port: the name to open and configure, and its other names."""

    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class PortOutcome:
    finding: Finding | None = None
    problem: Problem | None = None
    silent: bool = False


# --- pure parts -------------------------------------------------------------------------
def plans_for(profiles: Iterable[Profile]) -> list[BaudPlan]:
    """Group the serial profiles by bit rate; chatty protocols' rates first, then faster."""
    families: dict[int, set[str]] = {}
    pms: dict[int, list[str]] = {}
    modbus: dict[int, list[ModbusCandidate]] = {}
    for profile in profiles:
        if profile.bus != "serial" or profile.baudrate is None:
            continue
        baud = profile.baudrate
        if profile.driver_name == "modbus":
            try:
                options = ModbusOptions.model_validate(profile.driver_options)
            except (ValidationError, ValueError) as exc:
                log.warning("profile %s: driver_options unusable for a scan: %s",
                            profile.model, exc)
                continue
            ranges = {q.name: (q.min, q.max) for q in profile.quantities}
            modbus.setdefault(baud, []).append(ModbusCandidate(profile.model, options, ranges))
            families.setdefault(baud, set()).add("modbus")
        elif profile.model in FAMILY_OF:
            family = FAMILY_OF[profile.model]
            families.setdefault(baud, set()).add(family)
            if family == "pms":
                pms.setdefault(baud, []).append(profile.model)
    plans = [BaudPlan(baud, frozenset(fams), tuple(sorted(pms.get(baud, []))),
                      tuple(modbus.get(baud, []))) for baud, fams in families.items()]
    return sorted(plans, key=lambda p: (not p.families & _TALKERS, -p.baudrate))


def sds011_frames(data: bytes) -> list[bytes]:
    """Every 10-byte SDS011 frame (``AA C0``/``AA C5`` ... ``AB``) whose checksum fits."""
    frames, start = [], data.find(0xAA)
    while 0 <= start <= len(data) - _SDS011_FRAME:
        candidate = data[start:start + _SDS011_FRAME]
        try:
            if candidate[1] == 0xC0:
                sds011.parse_measurement(candidate)
            else:
                sds011.parse_reply(candidate)
        except (CrcError, FrameError):
            start = data.find(0xAA, start + 1)
            continue
        frames.append(candidate)
        start = data.find(0xAA, start + _SDS011_FRAME)
    return frames


def pms_frames(data: bytes) -> list[pms5003.PmsFrame]:
    """Every 32-byte PMS data frame (``42 4D 00 1C`` ...) whose 16-bit sum fits."""
    frames, start = [], data.find(_PMS_DATA_HEADER)
    while 0 <= start <= len(data) - _PMS_FRAME:
        try:
            frames.append(pms5003.parse_frame(data[start:start + _PMS_FRAME]))
        except (CrcError, FrameError):
            start = data.find(_PMS_DATA_HEADER, start + 1)
            continue
        start = data.find(_PMS_DATA_HEADER, start + _PMS_FRAME)
    return frames


def recognise(data: bytes, plan: BaudPlan) -> Identity | None:
    """Which talker sent these unsolicited bytes, if any fits this rate's profiles."""
    if "sds011" in plan.families:
        measurements = [f for f in sds011_frames(data) if f[1] == 0xC0]
        if measurements:
            device_id = sds011.parse_measurement(measurements[-1])[2]
            return Identity("sds011", {"device_id": f"{device_id:04x}"}, notes=(
                "active reporting mode (the agent switches it to query mode at start)",))
    if "pms" in plan.families and plan.pms_models:
        frames = pms_frames(data)
        if frames:
            return _pms_identity(frames[-1], plan, "active mode (sends frames by itself)")
    return None


def _pms_identity(frame: pms5003.PmsFrame, plan: BaudPlan, mode: str) -> Identity:
    notes = [mode, PMS_NOTE]
    if frame.error_code:
        notes.append(f"reports error code 0x{frame.error_code:02x}")
    return Identity(plan.pms_models[0], {"firmware": f"0x{frame.version:02x}"},
                    alternatives=plan.pms_models[1:], notes=tuple(notes))


# --- the port ---------------------------------------------------------------------------
def scan_port(open_link: OpenLink, port: PortChoice, plans: Sequence[BaudPlan],
              timing: SerialTiming) -> PortOutcome:
    """Listen at every rate, then (only if nothing was recognised) ask; see the module doc."""
    seen: dict[int, int] = {}
    try:
        for plan in plans:
            with closing(open_link(port.name, plan.baudrate, timing.poll_s)) as link:
                data = _listen(link, timing.listen_s(plan.families), plan)
                identity = recognise(data, plan)
                if identity is not None:
                    if identity.model == "sds011":
                        firmware = _sds011_firmware(link, timing)
                        identity = replace(identity, facts={**identity.facts, **firmware})
                    return _found(port, plan.baudrate, identity)
                if data:
                    seen[plan.baudrate] = len(data)
        garbled: list[str] = []
        for plan in plans:
            with closing(open_link(port.name, plan.baudrate, timing.poll_s)) as link:
                identity = _ask(link, plan, timing, garbled)
                if identity is not None:
                    return _found(port, plan.baudrate, identity)
    except BusError as exc:
        return PortOutcome(problem=Problem(port.name, str(exc)))
    if seen or garbled:
        heard = ", ".join(f"{n} bytes at {baud} bit/s" for baud, n in seen.items())
        notes = [f"unknown device: {heard or 'replies'} in no known frame format", *garbled]
        baudrate = max(seen, key=seen.__getitem__) if seen else plans[-1].baudrate
        return _found(port, baudrate, Identity(None, state=State.UNKNOWN, notes=tuple(notes)))
    return PortOutcome(silent=True)


def _found(port: PortChoice, baudrate: int, identity: Identity) -> PortOutcome:
    log.info("%s at %d bit/s: %s", port.name, baudrate, identity.model or "unknown device")
    return PortOutcome(Finding("serial", identity, port=port.name, port_aliases=port.aliases,
                               baudrate=baudrate))


def _listen(link: SerialLink, seconds: float, plan: BaudPlan) -> bytes:
    """Read without sending until the window closes or a known frame is complete."""
    deadline = link.clock.monotonic() + seconds
    data = bytearray()
    while link.clock.monotonic() < deadline:
        chunk = link.read_some(_READ_CHUNK)
        if chunk:
            data += chunk
            if recognise(bytes(data), plan) is not None:
                break
    log.debug("%s: heard %d bytes at %s bit/s", link.name, len(data), link.baudrate)
    return bytes(data)


def _ask(link: SerialLink, plan: BaudPlan, timing: SerialTiming,
         garbled: list[str]) -> Identity | None:
    """Read-only queries at one rate; unusable replies are noted in ``garbled``."""
    if "sds011" in plan.families:
        firmware = _sds011_firmware(link, timing)
        if firmware:
            mode = _sds011_reporting_mode(link, timing.reply_timeout_s)
            note = "reporting mode not read" if mode is None else _SDS011_MODES.get(
                mode, f"reporting mode {mode}")
            return Identity("sds011", firmware, notes=(note,))
    if plan.pms_models:
        link.discard_input()
        link.write(pms5003.encode_command(0xE2))  # passive read: one frame, nothing else
        frames = pms_frames(_read_for(link, timing.reply_timeout_s,
                                      lambda data: bool(pms_frames(data))))
        if frames:
            return _pms_identity(frames[-1], plan, "passive mode (answered a passive read)")
    if plan.modbus:
        return _modbus_identity(link, plan.modbus, timing.modbus_timeout_s, garbled)
    return None


def _sds011_firmware(link: SerialLink, timing: SerialTiming) -> dict[str, str]:
    """Firmware date and device id through the driver's identify(); empty if no reply."""
    driver = sds011.Sds011(link, sds011.Sds011Options(reply_timeout_s=timing.reply_timeout_s))
    try:
        return driver.identify()
    except (BusTimeout, CrcError, FrameError) as exc:
        log.debug("%s: no SDS011 firmware reply: %s", link.name, exc)
        return {}


def _sds011_reporting_mode(link: SerialLink, timeout_s: float) -> int | None:
    """Function 2 with data 2 = 0: *query* the reporting mode (0 active, 1 query)."""
    link.discard_input()
    link.write(sds011.encode_command(sds011.FN_REPORTING_MODE, sds011.QUERY))
    data = _read_for(link, timeout_s, lambda buf: any(
        f[1] == 0xC5 and f[2] == sds011.FN_REPORTING_MODE for f in sds011_frames(buf)))
    for frame in sds011_frames(data):
        if frame[1] == 0xC5 and frame[2] == sds011.FN_REPORTING_MODE:
            return sds011.parse_reply(frame).data3
    return None


def _modbus_identity(link: SerialLink, candidates: Sequence[ModbusCandidate],
                     timeout_s: float, garbled: list[str]) -> Identity | None:
    """One read per distinct (slave, function, registers); match values to profiles."""
    groups: dict[tuple[object, ...], list[ModbusCandidate]] = {}
    for candidate in candidates:
        opts = candidate.options
        key = (opts.slave_id, opts.function,
               tuple(sorted((r.address, r.words) for r in opts.registers)))
        groups.setdefault(key, []).append(candidate)
    for group in groups.values():
        first = group[0].options
        specs = tuple(spec.model_copy(update={"quantity": f"{c.model}/{spec.quantity}"})
                      for c in group for spec in c.options.registers)
        driver = ModbusRtu(link, first.model_copy(
            update={"registers": specs, "reply_timeout_s": timeout_s}))
        models = tuple(c.model for c in group)
        try:
            values = {r.quantity: r.value for r in driver.read()}
        except BusTimeout:
            continue
        except ModbusException as exc:
            return Identity(None, {"slave_id": str(first.slave_id)}, State.UNKNOWN, models,
                            (f"Modbus slave {first.slave_id} answered {exc.name}: not the "
                             f"register map of {', '.join(models)}",))
        except (CrcError, FrameError) as exc:  # line noise, or another protocol
            garbled.append(f"garbled reply to a Modbus read at {link.baudrate} bit/s ({exc})")
            continue
        return _match_modbus(group, values, first.slave_id)
    return None


def _match_modbus(group: Sequence[ModbusCandidate], values: dict[str, float],
                  slave_id: int) -> Identity:
    def fits(candidate: ModbusCandidate) -> bool:
        return all(low <= values[f"{candidate.model}/{name}"] <= high
                   for name, (low, high) in candidate.ranges.items()
                   if f"{candidate.model}/{name}" in values)

    plausible = [c for c in group if fits(c)]
    chosen = plausible or list(group)
    best = chosen[0]
    facts = {"slave_id": str(slave_id)}
    facts.update({key.split("/", 1)[1]: f"{value:g}" for key, value in values.items()
                  if key.startswith(f"{best.model}/")})
    notes = []
    if not plausible:
        notes.append("values fit no candidate's valid range: check the register map")
    elif len(plausible) > 1:
        notes.append("the same registers fit several profiles: keep the one installed")
    return Identity(best.model, facts, alternatives=tuple(c.model for c in chosen[1:]),
                    notes=tuple(notes))


def _read_for(link: SerialLink, seconds: float, done: Callable[[bytes], bool]) -> bytes:
    deadline = link.clock.monotonic() + seconds
    data = bytearray()
    while link.clock.monotonic() < deadline:
        data += link.read_some(_READ_CHUNK)
        if done(bytes(data)):
            break
    return bytes(data)
