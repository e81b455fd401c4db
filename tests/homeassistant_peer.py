"""Home Assistant as a test peer: its venv, its discovery check, a real instance.

Home Assistant is never a dependency of the agent. ``scripts/ensure-ha-venv`` installs
the pinned release once under ~/.cache/lokaalmeten (minutes the first time, a stamp
check after); the instance runs from that venv on a free port with a minimal
configuration (no ``default_config``: nothing that looks for devices or the internet)
and ``--skip-pip`` (nothing is installed at run time). It is set up as a person would:
the onboarding API makes the owner, the config-flow API adds the MQTT integration.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tests.mqtt_broker import Broker, free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
CHECK = Path(__file__).resolve().parent / "publish" / "ha_discovery_check.py"
CONFIGURATION = """\
homeassistant:
  name: Lokaal Meten test
  latitude: 52.09
  longitude: 5.12
  elevation: 0
  unit_system: metric
  time_zone: UTC
  country: NL
  currency: EUR
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
"""


def ha_python() -> Path:
    """The Home Assistant venv's python, installed first if need be."""
    done = subprocess.run([ROOT / "scripts" / "ensure-ha-venv"], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ensure-ha-venv failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


def check_discovery(python: Path, prefix: str, configs: dict[str, bytes]) -> dict[str, list[str]]:
    """Every config through Home Assistant's own discovery code: problems per topic."""
    request = {"prefix": prefix, "configs": {t: p.decode() for t, p in configs.items()}}
    done = subprocess.run([python, CHECK], input=json.dumps(request), capture_output=True,
                          text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"discovery check failed:\n{done.stderr}")
    return json.loads(done.stdout)


class HomeAssistant:
    """One Home Assistant instance in ``workdir``, owner onboarded, MQTT added."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.python = python
        self.config_dir = workdir / "config"
        self.config_dir.mkdir(parents=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        (self.config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        self.log = workdir / "home-assistant.log"
        self.token = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 300.0) -> None:
        """Start it and wait until its API answers (about 35 s here)."""
        self._process = subprocess.Popen(
            [self.python, "-m", "homeassistant", "-c", self.config_dir, "--skip-pip",
             "--log-file", self.log],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        if not wait_until(self._answers, timeout_s, step_s=0.5):
            self.stop()
            raise RuntimeError(f"Home Assistant did not start; see {self.log}")

    def onboard(self) -> None:
        """Create the owner through the onboarding API and log in (an access token)."""
        client_id = f"{self.base}/"
        answer = self._call("POST", "/api/onboarding/users", {
            "client_id": client_id, "name": "Test", "username": "test",
            "password": "lokaalmeten-test", "language": "en"}, auth=False)
        tokens = self._form("/auth/token", {"grant_type": "authorization_code",
                                            "code": answer["auth_code"],
                                            "client_id": client_id})
        self.token = tokens["access_token"]

    def add_mqtt(self, broker: Broker) -> None:
        """The MQTT integration's config flow, as the UI runs it: handler, then broker."""
        flow = self._call("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        step = self._call("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                          {"broker": broker.host, "port": broker.port})
        if step.get("type") != "create_entry":
            raise RuntimeError(f"MQTT config flow did not finish: {step}")

    def states(self) -> dict[str, dict]:
        """``/api/states`` by entity id."""
        return {s["entity_id"]: s for s in self._call("GET", "/api/states")}

    def stop(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
            self._process = None

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"Home Assistant exited {self._process.returncode}; "
                               f"see {self.log}")
        try:
            self._call("GET", "/api/onboarding", auth=False)
        except (OSError, urllib.error.URLError):
            return False
        return True

    def _call(self, method: str, path: str, body: dict | None = None, *,
              auth: bool = True) -> dict | list:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def _form(self, path: str, fields: dict[str, str]) -> dict:
        request = urllib.request.Request(self.base + path,
                                         urllib.parse.urlencode(fields).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
