"""From a validated config to what the daemon and the commands build on: each sensor's
driver and typed options (``plan``), how a worker opens its sensor, the humidity
rules, the Sensor.Community node id. Split from ``app.py`` because the commands
(``check-config``, ``read``, ``init``, ``calibrate``) need the plan but not the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agent.bus.provider import BusProvider
from agent.config import AgentConfig, ResolvedSensor
from agent.config.errors import problems_from
from agent.config.options import DriverOptions
from agent.config.profiles import all_profiles
from agent.errors import ConfigError
from agent.health.system import cpu_serial
from agent.sampling.humidity import HumidityRule
from agent.sampling.worker import Opened, Opener
from agent.sensors import DriverSpec, registry
from agent.sensors.base import BusKind
from agent.sensors.microphone import MicrophoneOptions


def driver_options(sensor_id: str, spec: DriverSpec, options: dict[str, Any],
                   source: str) -> DriverOptions:
    """Validate a sensor's ``options`` table against its driver's options model."""
    prefix = f"sensors.{sensor_id}.options"
    known = set(spec.options_type.model_fields)
    unknown = sorted(set(options) - known)
    problems = [(f"{prefix}.{key}", f"unknown option for {spec.model} "
                 f"(known: {', '.join(sorted(known)) or 'none'})") for key in unknown]
    if problems:
        raise ConfigError(source, problems)
    try:
        return spec.options_type.model_validate(options)
    except ValidationError as exc:
        raise ConfigError(source, problems_from(exc, prefix)) from exc


@dataclass(frozen=True)
class Plan:
    """A validated config with each sensor's driver spec and options resolved."""

    config: AgentConfig
    sensors: list[ResolvedSensor]
    drivers: dict[str, tuple[DriverSpec, DriverOptions]]
    source: str = ""
    """The file it came from, for error messages."""


def plan(config: AgentConfig, source: str) -> Plan:
    """Everything ``check-config`` verifies beyond the schema: drivers exist, options fit."""
    specs = registry()
    sensors = config.resolved_sensors()
    drivers: dict[str, tuple[DriverSpec, DriverOptions]] = {}
    problems: list[tuple[str, str]] = []
    for sensor in sensors:
        spec = specs.get(sensor.profile.driver_name)
        if spec is None:
            problems.append((f"sensors.{sensor.sensor_id}.model",
                             f"no driver registered for {sensor.profile.driver_name!r}"))
            continue
        options = {**sensor.profile.driver_options, **sensor.config.options}
        try:
            drivers[sensor.sensor_id] = (
                spec, driver_options(sensor.sensor_id, spec, options, source))
        except ConfigError as exc:
            problems.extend(exc.problems)
    problems += config.sinks.problems(
        config.sensors, all_profiles(), {cid for cid, c in config.cameras.items() if c.enabled},
        config.location)
    if config.mqtt.home_assistant is not None:
        problems += config.mqtt.home_assistant.problems(config.sensors)
    if problems:
        raise ConfigError(source, problems)
    community_node(config, source)
    return Plan(config, sensors, drivers, source)


def community_node(config: AgentConfig, source: str) -> str | None:
    """This box's node id on Sensor.Community: the configured one, else ``raspi-<CPU
    serial>`` as Sensor.Community's Raspberry Pi clients send it; None without the sink."""
    sc = config.sinks.active_sensor_community()
    if sc is None or sc.node_id is not None:
        return None if sc is None else sc.node_id
    serial = cpu_serial()
    if serial is None:
        raise ConfigError(source, [("sinks.sensor_community.node_id", "this machine has no "
                                    "Raspberry Pi CPU serial to make raspi-<serial> of; set "
                                    "the id registered on devices.sensor.community")])
    return f"raspi-{serial}"


def sensor_opener(the_plan: Plan, buses: BusProvider) -> Opener:
    """How a worker (re)opens its sensor: open the bus, build the driver."""

    def open_sensor(sensor: ResolvedSensor) -> Opened:
        spec, options = the_plan.drivers[sensor.sensor_id]
        if spec.bus is BusKind.SERIAL:
            assert sensor.config.port is not None and sensor.baudrate is not None
            link = buses.serial(sensor.config.port, sensor.baudrate, sensor.config.timeout_s)
            return spec.build(link, options), link.close
        if spec.bus is BusKind.AUDIO:
            # The meter's interval is the sampling interval: one interval per read.
            assert sensor.config.device is not None and isinstance(options, MicrophoneOptions)
            options = options.model_copy(update={"interval_s": sensor.interval_s})
            source = buses.audio(sensor.config.device, options.sample_rate,
                                 channel=options.channel, block_s=options.block_s)
            return spec.build(source, options), source.close
        assert sensor.address is not None
        return spec.build(buses.i2c(sensor.bus, sensor.address), options), lambda: None

    return open_sensor


def humidity_rules(sensors: list[ResolvedSensor]) -> list[HumidityRule]:
    """One rule per PM sensor with a ``humidity`` section; RH older than two windows is stale."""
    windows = {s.sensor_id: s.window_s for s in sensors}
    rules = []
    for sensor in sensors:
        humidity = sensor.config.humidity
        if humidity is not None and humidity.source in windows:
            longest = max(sensor.window_s, windows[humidity.source])
            rules.append(HumidityRule(sensor.sensor_id, humidity.source,
                                      humidity.threshold_percent, humidity.kappa,
                                      int(2000 * longest), humidity.growth))
    return rules
