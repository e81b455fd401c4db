"""Keeps the box's retained announcements in step with the configuration: its birth
message (``agent.publish.birth``) and Home Assistant's discovery configs.

The forwarder publishes, on every connection, each config that connection has not sent
yet (retained, QoS 1: a broker that lost its retained messages gets them back) and an
empty retained message for every topic announced before that is no longer wanted (a
sensor left the config, or ``[mqtt.home_assistant]`` was disabled), which is how Home
Assistant removes an entity. What was announced is remembered in a small JSON file
beside the outbox: a topic is written there *before* its config is published and
removed only after the broker acknowledged its removal, so a crash in between leaves a
harmless extra removal, never an entity nobody removes. The file is written only when
that set changes, not on every connection (SD cards).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from agent.models import OutboxRecord
from agent.publish.homeassistant import NOTHING, Announcement

log = logging.getLogger(__name__)

STATE_FILE = "home-assistant.json"


class Announcer:
    """The discovery messages each connection still owes, and the announced set on disk."""

    def __init__(self, path: Path, announcement: Announcement = NOTHING) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._wanted = announcement
        self._remembered = self._load()
        self._sent: set[str] = set()
        """Topics sent on the current connection (configs and removals)."""

    def update(self, announcement: Announcement) -> None:
        """A reload: the next :meth:`pending` sends what changed (new or different
        payloads, removals) and nothing else; a new connection still sends everything."""
        with self._lock:
            old = {**self._wanted.standing, **self._wanted.configs}
            new = {**announcement.standing, **announcement.configs}
            self._sent -= {t for t in old.keys() | new.keys() if old.get(t) != new.get(t)}
            self._wanted = announcement

    def new_connection(self) -> None:
        """Everything is sent again on a new connection (retained, so idempotent)."""
        with self._lock:
            self._sent.clear()

    def pending(self) -> list[tuple[str, bytes]]:
        """(topic, payload) to publish retained now: the standing messages, configs, then
        removals (empty)."""
        with self._lock:
            wanted = self._wanted
            standing = [(t, p) for t, p in wanted.standing.items() if t not in self._sent]
            configs = [(t, p) for t, p in wanted.configs.items() if t not in self._sent]
            removals = [t for t in self._remembered if t not in wanted.configs
                        and t not in self._sent]
            new = {t: list(wanted.clears.get(t, ())) for t, _ in configs
                   if t not in self._remembered}
            if new:  # remembered before published: see the module's docstring
                self._remembered.update(new)
                self._save()
            out = standing + configs
            for topic in removals:
                out += [(topic, b"")] + [(clear, b"") for clear in self._remembered[topic]]
            self._sent.update(t for t, _ in out)
            return out

    def confirmed(self, topic: str, payload: bytes) -> None:
        """The broker acknowledged ``topic``: a removal is forgotten for good."""
        if payload:
            return
        with self._lock:
            if topic in self._remembered and topic not in self._wanted.configs:
                del self._remembered[topic]
                self._save()

    def states(self, records: Iterable[OutboxRecord]) -> list[tuple[str, bytes]]:
        """Retained state messages for a batch of rows (newest per quantity)."""
        with self._lock:
            wanted = self._wanted
        return wanted.state_messages(records) if wanted.states else []

    def _load(self) -> dict[str, list[str]]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("%s unreadable (%s): Home Assistant entities of sensors removed "
                        "earlier may stay until deleted there", self._path, exc)
            return {}
        announced = data.get("announced", {}) if isinstance(data, dict) else {}
        return {str(t): [str(c) for c in clears] for t, clears in announced.items()}

    def _save(self) -> None:
        """Atomically (a power cut leaves the old file or the new one)."""
        tmp = self._path.with_name(self._path.name + ".tmp")
        try:
            with tmp.open("w") as handle:
                json.dump({"announced": self._remembered}, handle, indent=1)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self._path)
        except OSError as exc:
            log.warning("cannot remember the announced Home Assistant entities in %s: %s",
                        self._path, exc)
