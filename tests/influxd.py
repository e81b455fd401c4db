"""A real InfluxDB 1.x (Debian's ``influxdb`` package) on free ports, for tests.

The package installs a systemd unit; nothing here uses it: the test starts its own
``influxd run`` with a config file of its own, data in the test's temp dir, no
reporting, no self-monitoring, so the server starts in about a second and leaves
nothing behind.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.mqtt_broker import free_port, wait_until

INFLUXD = shutil.which("influxd") or "/usr/bin/influxd"


class InfluxServer:
    """``influxd run`` with its own config; stopped, killed and restarted on the same data."""

    def __init__(self, workdir: Path, *, auth: bool = False) -> None:
        if not Path(INFLUXD).exists():
            raise RuntimeError("influxd is not installed (apt-get install -y influxdb)")
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "influxdb.conf"
        self.log = workdir / "influxd.log"
        self.config.write_text(f"""
reporting-disabled = true
bind-address = "127.0.0.1:{free_port()}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = {"true" if auth else "false"}
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> InfluxServer:
        with self.log.open("ab") as log:
            self._process = subprocess.Popen([INFLUXD, "run", "-config", str(self.config)],
                                             stdout=log, stderr=log)
        if not wait_until(self._up, 30, 0.1):
            raise RuntimeError(f"influxd did not start on port {self.port}: "
                               f"{self.log.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(30)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(30)
            self._process = None

    def query(self, text: str, database: str | None = None, *, auth: tuple[str, str] | None
              = None, epoch: str = "ms") -> Any:
        """The JSON answer of an InfluxQL query (``/query``), times as epoch ``epoch``."""
        params = {"q": text, "epoch": epoch, **({"db": database} if database else {})}
        request = urllib.request.Request(f"{self.url}/query",
                                         data=urllib.parse.urlencode(params).encode())
        if auth is not None:
            pair = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {pair}")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def rows(self, text: str, database: str) -> list[dict[str, Any]]:
        """The first series of a query as dicts (column → value), tags included."""
        results = self.query(text, database)["results"][0]
        assert "error" not in results, results
        found = []
        for series in results.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                found.append({**series.get("tags", {}), **row,
                              "_measurement": series["name"]})
        return found

    def _up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return response.status == 204
        except OSError:
            return False
