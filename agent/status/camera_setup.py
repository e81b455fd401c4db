"""Camera set-up for the page: sessions per camera, the heat map view, saving lines and zones.

The page asks (``setup_json``) and acts (``setup_post``); this module turns those into
calls on each camera's :class:`SetupSession` (kept here by camera id, so a session
outlives the counter restart that saving lines causes) and into an edit of the config
file (``agent.config.camera_write``), checked by the same validation as
``lokaalmeten check-config`` and followed by a reload (the SIGHUP path).

What the page gets is what the boundary admitted (frame size, k-anonymous cells,
crossings since set-up began) plus the running configuration's lines and zones:
never a picture, a box, a track or a position of a person.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config.camera import CameraConfig
from agent.config.camera_write import Geometry, ReadOnlyConfig, propose, write_geometry
from agent.config.errors import problems_from
from agent.errors import ConfigError
from agent.vision.heatmap import COLS, ROWS
from agent.vision.setup_session import SetupSession

log = logging.getLogger(__name__)


class Camera(Protocol):
    """What set-up needs of a running camera (``CounterSupervisor``)."""

    camera_id: str
    config: CameraConfig


class _Start(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str
    minutes: float = Field(gt=0)


class _Stop(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera: str


Answer = tuple[HTTPStatus, bytes]
_ACTIONS: dict[str, type[_Start] | type[_Stop] | type[Geometry]] = {
    "start": _Start, "stop": _Stop, "save": Geometry}


class CameraSetup:
    """The set-up side of the page (module docstring); thread-safe through the sessions."""

    def __init__(self, cameras: Callable[[], Sequence[Camera]], config_path: Path | None,
                 validate: Callable[[Path], object], reload: Callable[[], None],
                 monotonic: Callable[[], float], *, proposal: Path | None = None) -> None:
        self._cameras = cameras
        self._config_path = config_path
        self._proposal = proposal
        """Where to propose when the config cannot be written (``agent.config.camera_write``)."""
        self._validate = validate
        self._reload = reload
        self._monotonic = monotonic
        self._sessions: dict[str, SetupSession] = {}

    def session(self, camera_id: str) -> SetupSession:
        """The camera's session, the same across reloads (the supervisor takes it)."""
        return self._sessions.setdefault(camera_id, SetupSession())

    def setup_json(self) -> bytes:
        now = self._monotonic()
        return json.dumps({"grid": [COLS, ROWS], "saving": self._config_path is not None,
                           "cameras": [self._camera(c, now) for c in self._cameras()]}).encode()

    def setup_post(self, action: str, body: bytes) -> Answer:
        """``start``, ``stop`` or ``save``, with a JSON body; the caller checked the token."""
        model = _ACTIONS.get(action)
        if model is None:
            return HTTPStatus.NOT_FOUND, _errors("", "", "no such action")
        try:
            request = model.model_validate_json(body)
        except ValidationError as exc:
            return HTTPStatus.BAD_REQUEST, _json({"errors": [
                {"file": "", "key": key, "reason": reason} for key, reason in problems_from(exc)]})
        camera = next((c for c in self._cameras() if c.camera_id == request.camera), None)
        if camera is None:
            return HTTPStatus.NOT_FOUND, _errors("", "camera", "no running camera of that id")
        if isinstance(request, _Start):
            return self._start(camera, request)
        if isinstance(request, Geometry):
            return self._save(camera, request)
        return self._stop(camera)

    def _camera(self, camera: Camera, now: float) -> dict[str, object]:
        session = self.session(camera.camera_id)
        view = session.view(now)
        counts = {} if view is None else view.lines
        config = camera.config
        return {
            "id": camera.camera_id, "remaining_s": round(session.remaining_s(now)),
            "max_minutes": config.setup.max_minutes, "k": config.setup.min_people,
            "window_s": config.setup.window_s,
            "frame": None if view is None else list(view.frame),
            "people": 0 if view is None else view.people,
            "cells": [] if view is None else [[i, n] for i, n in view.cells.items()],
            "lines": [{**x.model_dump(), "in": counts.get(x.name, (None, None))[0],
                       "out": counts.get(x.name, (None, None))[1]} for x in config.lines],
            "zones": [z.model_dump(exclude_none=True) for z in config.zones]}

    def _start(self, camera: Camera, request: _Start) -> Answer:
        longest = camera.config.setup.max_minutes
        if request.minutes > longest:
            return HTTPStatus.BAD_REQUEST, _errors(
                "", f"cameras.{camera.camera_id}.setup.max_minutes",
                f"at most {longest:g} minutes")
        self.session(camera.camera_id).start(self._monotonic(), request.minutes)
        log.info("camera %s: set-up mode on for %g minutes", camera.camera_id, request.minutes)
        return HTTPStatus.OK, _json({"ok": True})

    def _stop(self, camera: Camera) -> Answer:
        self.session(camera.camera_id).stop(self._monotonic())
        log.info("camera %s: set-up mode off", camera.camera_id)
        return HTTPStatus.OK, _json({"ok": True})

    def _save(self, camera: Camera, request: Geometry) -> Answer:
        path = self._config_path
        if path is None:
            return HTTPStatus.CONFLICT, _errors("", "", "the agent was started without a "
                                                "configuration file")
        try:
            try:
                write_geometry(path, request, self._validate)
            except ReadOnlyConfig:
                if self._proposal is None:
                    raise
                propose(self._proposal, path, request, self._validate)
                log.info("camera %s: lines and zones proposed in %s for %s (applied by "
                         "lokaalmeten-setup.path, or: sudo lokaalmeten apply-setup)",
                         camera.camera_id, self._proposal, path)
                return HTTPStatus.ACCEPTED, _json({"ok": True, "file": str(path),
                                                   "proposed": str(self._proposal)})
        except ConfigError as exc:
            return HTTPStatus.BAD_REQUEST, _json({"errors": [
                {"file": exc.source, "key": key, "reason": reason}
                for key, reason in exc.problems]})
        log.info("camera %s: lines and zones saved to %s; reloading", camera.camera_id, path)
        self._reload()
        return HTTPStatus.OK, _json({"ok": True, "file": str(path)})


def _json(document: object) -> bytes:
    return json.dumps(document).encode()


def _errors(file: str, key: str, reason: str) -> bytes:
    return _json({"errors": [{"file": file, "key": key, "reason": reason}]})
