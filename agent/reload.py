"""What a configuration reload (SIGHUP) changes: which components restart, what it cannot do.

The outbox stays open across a reload, so the boot id and the ``seq`` numbering go
on and nothing buffered is lost. That rules out two kinds of change in a running
agent: ``device_id`` (the backlog and the numbering belong to the box that stored
them; a receiver would see another device continue mid-sequence) and ``[storage]``
(the open outbox is the one to keep). Those need a restart; a reload that changes
them is refused as a whole, like an invalid file, so the agent never runs half old,
half new.

Everything else restarts only the components whose settings differ: a reload that
adds a sensor does not reconnect to the broker (no ``offline``/``online`` blip at the
receivers) and does not restart a camera's counter process.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config import AgentConfig
from agent.errors import ConfigError

RESTART_HINT = "a running agent cannot take this over: restart it " \
    "(sudo systemctl restart lokaalmeten-agent)"


@dataclass(frozen=True)
class Changes:
    """The components a new configuration restarts."""

    sensors: bool
    """Any sensor added, removed or changed: the sampler restarts (all sensors)."""
    cameras: frozenset[str]
    """Cameras whose counter process stops, restarts or starts (changed, removed, added)."""
    broker: bool
    """``[mqtt]`` changed: the forwarder reconnects with the new settings."""
    status: bool
    """The status page and its history rules (also when sensors or cameras change)."""
    log_level: bool

    def __bool__(self) -> bool:
        return self.sensors or bool(self.cameras) or self.broker or self.status \
            or self.log_level

    def describe(self) -> str:
        """For the log line: ``sensors, camera entrance, broker, status page``."""
        parts = ["sensors"] if self.sensors else []
        parts += [f"camera {camera_id}" for camera_id in sorted(self.cameras)]
        parts += ["broker"] if self.broker else []
        parts += ["status page"] if self.status else []
        parts += ["log level"] if self.log_level else []
        return ", ".join(parts)


def refuse_fixed_settings(old: AgentConfig, new: AgentConfig, source: str) -> None:
    """Raise :class:`ConfigError` naming every change a running agent cannot take over."""
    problems = []
    if new.device_id != old.device_id:
        problems.append(("device_id", f"changed from {old.device_id!r}; {RESTART_HINT}"))
    for key in sorted(type(old.storage).model_fields):
        if getattr(new.storage, key) != getattr(old.storage, key):
            problems.append((f"storage.{key}", f"changed (the outbox stays open during a "
                             f"reload); {RESTART_HINT}"))
    if new.sinks != old.sinks:  # the open outbox keeps a position for each configured sink
        problems.append(("sinks", f"changed (the open outbox keeps a position per sink); "
                         f"{RESTART_HINT}"))
    if problems:
        raise ConfigError(source, problems)


def changes(old: AgentConfig, new: AgentConfig) -> Changes:
    """Which components ``new`` restarts; call after :func:`refuse_fixed_settings`."""
    log_level = new.log_level != old.log_level
    sensors = new.sensors != old.sensors
    # A counter process gets the log level when it is spawned: a new level restarts it.
    cameras = frozenset(camera_id for camera_id in {*old.cameras, *new.cameras}
                        if log_level or old.cameras.get(camera_id) != new.cameras.get(camera_id))
    status = sensors or _counting(old) != _counting(new) or new.status != old.status \
        or new.health != old.health
    return Changes(sensors, cameras, new.mqtt != old.mqtt, status, log_level)


def _counting(config: AgentConfig) -> set[str]:
    """The cameras whose counts the status page shows."""
    return {camera_id for camera_id, camera in config.cameras.items() if camera.enabled}
