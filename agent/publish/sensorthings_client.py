"""Provisioning: make the server hold the catalog's entities, each exactly once.

For each entity, in catalog order (a link always points to one made before it):
find it by ``properties.lokaalmeten_id`` (``$filter``); create it when missing, with
links to what it belongs to by ``@iot.id``; when found, PATCH only the fields that
differ (``properties`` members others added on the server are kept) and link a Thing
to a Location it does not list yet. Running it again changes nothing; a renamed place
or a new agent version becomes a PATCH, a new sensor a few POSTs.

Only standard SensorThings v1.1 requests are used (``$filter`` on ``properties``,
POST, PATCH, ``Location`` header or ``@iot.id`` in the answer), so FROST and the other
implementations take them alike. An HTTP error is raised as urllib raises it (the
sink turns its status into a verdict); an answer that makes no sense is a
:class:`~agent.errors.PublishError`.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from agent.config.sensorthings import SensorThingsConfig
from agent.errors import PublishError
from agent.publish.sensorthings import (
    Catalog,
    Entity,
    EntityId,
    Json,
    changes,
    entity_url,
    find_url,
    json_bytes,
)

log = logging.getLogger(__name__)

ID_IN_LOCATION = re.compile(r"\((\d+|'(?:[^']|'')*')\)\s*$")


class Action(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass
class Provisioned:
    """What provisioning found or made: ids by key, and what it did to each."""

    ids: dict[str, EntityId] = field(default_factory=dict)
    actions: list[tuple[Entity, Action]] = field(default_factory=list)


class Server:
    """JSON over HTTP to one SensorThings service root (urllib: a few requests at start)."""

    def __init__(self, base: str, *, user_agent: str, timeout_s: float,
                 credentials: Callable[[], tuple[str, str] | None] = lambda: None) -> None:
        self.base = base.rstrip("/")
        self._user_agent = user_agent
        self._timeout_s = timeout_s
        self._credentials = credentials

    @classmethod
    def for_config(cls, config: SensorThingsConfig, user_agent: str) -> Server:
        """The server ``[sinks.sensorthings]`` names, its password read at each request."""
        def credentials() -> tuple[str, str] | None:
            secret = config.secret()
            return None if config.username is None or secret is None \
                else (config.username, secret)
        return cls(str(config.url), user_agent=user_agent, timeout_s=config.timeout_s,
                   credentials=credentials)

    def headers(self) -> dict[str, str]:
        found = {"Content-Type": "application/json", "Accept": "application/json",
                 "User-Agent": self._user_agent}
        pair = self._credentials()
        if pair is not None:
            token = base64.b64encode(f"{pair[0]}:{pair[1]}".encode()).decode()
            found["Authorization"] = f"Basic {token}"
        return found

    def request(self, method: str, url: str, body: Json | None = None
                ) -> tuple[str | None, Json]:
        """The answer's Location header and JSON body ({} when it has none)."""
        data = None if body is None else json_bytes(body)
        prepared = urllib.request.Request(url, data=data, method=method,
                                          headers=self.headers())
        with urllib.request.urlopen(prepared, timeout=self._timeout_s) as response:
            raw = response.read()
            where = response.headers.get("Location")
        try:
            parsed = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise PublishError(f"{method} {url}: the answer is not JSON ({exc})") from None
        return where, parsed if isinstance(parsed, dict) else {}


def provision(server: Server, catalog: Catalog) -> Provisioned:
    """Find, create or update every entity of ``catalog``; ids by key."""
    done = Provisioned()
    for entity in catalog.entities:
        entity_id, action = _ensure(server, entity, done.ids)
        done.ids[entity.key] = entity_id
        done.actions.append((entity, action))
        if action is not Action.UNCHANGED:
            log.info("SensorThings: %s %s %r", action, entity.collection, entity.key)
    return done


def _ensure(server: Server, entity: Entity, ids: dict[str, EntityId]
            ) -> tuple[EntityId, Action]:
    found = _find(server, entity)
    links: dict[str, list[Json]] = {}
    for name, key in entity.links:
        links.setdefault(name, []).append({"@iot.id": ids[key]})
    if found is None:
        body: Json = dict(entity.fields)
        for name, targets in links.items():
            body[name] = targets if entity.many else targets[0]
        where, answer = server.request("POST", f"{server.base}/{entity.collection}", body)
        return _created_id(entity, where, answer), Action.CREATED
    entity_id = _id(entity, found)
    wanted = dict(entity.fields)
    if isinstance(found.get("properties"), dict) and isinstance(wanted.get("properties"), dict):
        wanted["properties"] = found["properties"] | wanted["properties"]  # type: ignore[operator]
    patch = changes(wanted, found)
    if entity.many:
        patch |= _missing_links(server, entity, entity_id, links)
    if not patch:
        return entity_id, Action.UNCHANGED
    server.request("PATCH", entity_url(server.base, entity.collection, entity_id), patch)
    return entity_id, Action.UPDATED


def _find(server: Server, entity: Entity) -> Json | None:
    _, answer = server.request("GET", find_url(server.base, entity.collection, entity.key))
    value = answer.get("value")
    if not isinstance(value, list):
        raise PublishError(f"{entity.collection}: the server's answer to a $filter has no "
                           "'value' list; is sinks.sensorthings.url the service root "
                           "(…/v1.1)?")
    if len(value) > 1:
        log.warning("SensorThings: %d %s carry %s %r; using the first", len(value),
                    entity.collection, "lokaalmeten_id", entity.key)
    return value[0] if value and isinstance(value[0], dict) else None


def _missing_links(server: Server, entity: Entity, entity_id: EntityId,
                   links: dict[str, list[Json]]) -> Json:
    """To-many links (a Thing's Locations) the server does not list yet."""
    patch: Json = {}
    for name, targets in links.items():
        _, answer = server.request(
            "GET", f"{entity_url(server.base, entity.collection, entity_id)}/{name}")
        listed = answer.get("value")
        have = {str(item.get("@iot.id")) for item in listed if isinstance(item, dict)} \
            if isinstance(listed, list) else set()
        if any(str(t["@iot.id"]) not in have for t in targets):
            patch[name] = targets
    return patch


def _created_id(entity: Entity, where: str | None, answer: Json) -> EntityId:
    if "@iot.id" in answer:
        return _id(entity, answer)
    match = ID_IN_LOCATION.search(where or "")
    if match is None:
        raise PublishError(f"{entity.collection}: the server created {entity.key!r} but "
                           f"named no @iot.id (Location: {where!r})")
    text = match.group(1)
    return int(text) if text.isdigit() else text[1:-1].replace("''", "'")


def _id(entity: Entity, found: Json) -> EntityId:
    value = found.get("@iot.id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PublishError(f"{entity.collection} {entity.key!r}: no usable @iot.id "
                           f"({value!r})")
    return value
