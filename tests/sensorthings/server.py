"""A real SensorThings API server for the tests, started on a free port.

``scripts/ensure-sta-venv`` installs django-ogc-sensorthings once under
~/.cache/lokaalmeten (seconds; a fresh machine gets it from PyPI); ``site.py`` runs it
on SQLite in the test's directory. :class:`StaServer` reads back what it stored over
the API, as any client of the server would.
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

from tests.mqtt_broker import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(__file__).resolve().parent / "site.py"


def sta_python() -> Path:
    done = subprocess.run([ROOT / "scripts" / "ensure-sta-venv"], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/ensure-sta-venv failed:\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1])


class StaServer:
    """One server process; ``url`` is its service root (…/v1.1)."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/sensorthings/v1.1"
        self.log = workdir / "sta-server.log"
        self._db = workdir / "sta.sqlite3"
        self._python = python
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [self._python, SITE, str(self.port), str(self._db)], stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        if not wait_until(self._answers, timeout_s, step_s=0.2):
            self.stop()
            raise RuntimeError(f"the SensorThings server did not start; see {self.log}")

    def stop(self) -> None:
        if self._process is not None:
            os.killpg(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
            self._process = None

    def get(self, path: str, **query: str) -> dict:
        """One GET of ``path`` below the service root (or an absolute URL)."""
        url = path if path.startswith("http") else f"{self.url}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def all(self, path: str, **query: str) -> list[dict]:
        """Every entity of a collection, following @iot.nextLink."""
        page = self.get(path, **query)
        found = list(page["value"])
        while page.get("@iot.nextLink"):
            page = self.get(page["@iot.nextLink"])
            found += page["value"]
        return found

    def send(self, method: str, path: str, body: dict) -> int:
        request = urllib.request.Request(f"{self.url}/{path}", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"}, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    def _answers(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise RuntimeError(f"the SensorThings server exited {self._process.returncode}; "
                               f"see {self.log.read_text()[-2000:]}")
        try:
            self.get("")
        except (OSError, urllib.error.URLError):
            return False
        return True
