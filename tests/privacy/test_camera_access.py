"""Under the unit's credentials the daemon cannot open a camera; its counter can, and counts.

The real daemon (``python -m agent run``) runs as an unprivileged user with
exactly what ``systemd/lokaalmeten-agent.service`` gives it: the camera group
``video`` and another supplementary group, ``CAP_SETGID`` as its only ambient,
permitted, effective and bounding capability, no new privileges, the unit's
``Environment=`` (``setpriv`` sets these up the way systemd does). A stand-in camera node, a file
``root:video`` mode 0660 like ``/dev/video0``, shows what those groups allow.
Then, while the daemon counts a video and publishes to a real Mosquitto:

* the daemon holds no camera group (the other group it keeps: the drop is
  targeted) and no capability at all, in every one of its threads (capabilities
  belong to threads), and a process with exactly its credentials is refused the
  stand-in node (EACCES);
* the zygote and the counter process it forked hold the camera group and
  nothing else, no capability, and a process with the counter's credentials
  opens the node (so the refusal above is the groups' doing);
* the counter's measurements arrive at the broker.

Without ``CAP_SETGID`` (a laptop, ``simulate``) the daemon says in one
WARNING what is not enforced, and counts all the same.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, Recorder, wait_until
from tests.vision.streams import INT8_MODEL, REPO, vtest_frames, write_clip

pytestmark = pytest.mark.slow

UNIT = REPO / "systemd" / "lokaalmeten-agent.service"
USER = "nobody"
OTHER_GROUP = "dialout"
"""A supplementary group that opens no camera: the daemon keeps it."""
UNIT_CAPS = ["--inh-caps=-all,+setgid", "--ambient-caps=-all,+setgid",
             "--bounding-set=-all,+setgid"]
NO_CAPS = ["--inh-caps=-all", "--bounding-set=-all"]


@dataclass(frozen=True)
class Creds:
    """A process's credentials as /proc/<pid>/status shows them (parsed here, not by
    the agent's own ``privileges`` module, so that a bug there cannot hide)."""

    uid: int
    gid: int
    groups: frozenset[int]
    caps: dict[str, int]
    no_new_privs: bool

    @classmethod
    def of(cls, pid: int, tid: int | None = None) -> Creds:
        task = f"/proc/{pid}/task/{tid or pid}/status"
        status = dict(line.split(":\t", 1) for line in
                      Path(task).read_text().splitlines() if ":\t" in line)
        return cls(int(status["Uid"].split()[0]), int(status["Gid"].split()[0]),
                   frozenset(int(g) for g in status["Groups"].split()),
                   {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapAmb",
                                                    "CapBnd")},
                   status["NoNewPrivs"].strip() == "1")


def every_thread(pid: int) -> list[Creds]:
    return [Creds.of(pid, int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


def unit_environment() -> dict[str, str]:
    """The unit's ``Environment=`` settings (one KEY=VALUE per line there)."""
    return dict(line.split("=", 2)[1:] for line in UNIT.read_text().splitlines()
                if line.startswith("Environment="))


def open_as(node: Path, uid: int, gid: int, groups: frozenset[int]) \
        -> subprocess.CompletedProcess[str]:
    """Open ``node`` read-write (as V4L2 does) in a new process with these credentials and
    no capability."""
    listed = ["--groups=" + ",".join(map(str, sorted(groups)))] if groups \
        else ["--clear-groups"]
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", *listed, *NO_CAPS,
                           "--", "/bin/sh", "-c", ': <> "$0"', str(node)],
                          capture_output=True, text=True, check=False)


@dataclass
class Box:
    root: Path
    """World-traversable: the unprivileged daemon reads its config and clip here."""
    node: Path
    video: int
    other: int
    uid: int
    gid: int
    python: str
    env: dict[str, str]


def _interpreter(uid: int, gid: int) -> tuple[str, dict[str, str]]:
    """An interpreter the unprivileged user can start, with an environment that finds the
    agent and its dependencies. This venv's own may sit under a directory only root can
    enter (a pyenv in /root): then the system's python3 of the same minor version, with
    the venv's site-packages on the path."""
    site = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    minor = f"/usr/bin/python3.{sys.version_info.minor}"
    for python, path in ((sys.executable, [str(REPO)]), (minor, [str(REPO), *site])):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}",
                                "--clear-groups", *NO_CAPS, "--", "/bin/sh", "-c",
                                'exec "$0" -c "import cv2, onnxruntime, agent.app"', python],
                               env=env, capture_output=True, check=False)
        if probe.returncode == 0:
            return python, env
    pytest.fail(f"no Python interpreter that {USER} may run imports the agent")


@pytest.fixture
def box() -> Iterator[Box]:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        message = "needs root and setpriv (util-linux) to run the daemon as another user"
        if os.environ.get("LOKAALMETEN_REQUIRE_SANDBOX") == "1":
            pytest.fail(message)
        pytest.skip(message)
    user = pwd.getpwnam(USER)
    root = Path(tempfile.mkdtemp(prefix="lm-camera-access-"))
    try:
        root.chmod(0o755)
        for name in ("state", "home"):
            (root / name).mkdir()
            os.chown(root / name, user.pw_uid, user.pw_gid)
        video = grp.getgrnam("video").gr_gid
        node = root / "video0"  # a stand-in for /dev/video0: root:video, 0660
        node.write_bytes(b"")
        os.chown(node, 0, video)
        node.chmod(0o660)
        write_clip(root / "clip.avi", vtest_frames(0, 80), 10).chmod(0o644)
        python, env = _interpreter(user.pw_uid, user.pw_gid)
        env.update(HOME=str(root / "home"), XDG_CACHE_HOME=str(root / "home" / ".cache"),
                   PYTHONDONTWRITEBYTECODE="1", **unit_environment())
        yield Box(root, node, video, grp.getgrnam(OTHER_GROUP).gr_gid, user.pw_uid,
                  user.pw_gid, python, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def config(box: Box, broker: Broker) -> Path:
    path = box.root / "agent.toml"
    path.write_text(fast_head("camera-access-box", 1).replace(
        "[mqtt]\n", f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n').replace(
        "[storage]\n", f'[storage]\npath = "{box.root / "state" / "outbox.sqlite"}"\n') + f"""
[cameras.street]
source = "{box.root / 'clip.avi'}"
model = "{INT8_MODEL}"
interval_s = 1
loop = true
""")
    path.chmod(0o644)
    return path


def start(box: Box, broker: Broker, caps: list[str], command: str = "run") -> subprocess.Popen:
    """The daemon as the unprivileged user with the video and one other group."""
    extra = ["--broker", f"{broker.host}:{broker.port}", "--state-dir",
             str(box.root / "state")] if command == "simulate" else []
    with (box.root / "agent.log").open("ab") as log:
        return subprocess.Popen(
            ["setpriv", f"--reuid={box.uid}", f"--regid={box.gid}",
             f"--groups={box.video},{box.other}", *caps, "--no-new-privs", "--", box.python,
             "-m", "agent", command, "--config", str(config(box, broker)), *extra],
            stdout=log, stderr=log, env=box.env, cwd=box.root)


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def counted(recorder: Recorder) -> bool:
    return any(m["sensor"] == "street" and m["quantity"] == "frames" and m["value"] > 0
               for m in recorder.measurements())


def stop(daemon: subprocess.Popen) -> int:
    daemon.send_signal(signal.SIGTERM)
    try:
        return daemon.wait(30)
    finally:
        daemon.kill()


def test_under_the_units_credentials_only_the_counter_can_open_a_camera(
        box: Box, broker: Broker, recorder: Recorder) -> None:
    assert open_as(box.node, box.uid, box.gid, frozenset({box.video})).returncode == 0, \
        "the stand-in node opens with the camera group"
    daemon = start(box, broker, UNIT_CAPS)
    log = box.root / "agent.log"
    try:
        assert wait_until(lambda: counted(recorder), 120), log.read_text()[-3000:]
        (zygote,) = children(daemon.pid)
        counter = children(zygote)[0]
        threads = {name: every_thread(pid) for name, pid in
                   (("daemon", daemon.pid), ("zygote", zygote), ("counter", counter))}
        assert "agent.vision.zygote" in Path(f"/proc/{zygote}/cmdline").read_text()
    finally:
        code = stop(daemon)
    text = log.read_text()
    assert code == 0, text[-3000:]
    setgid = 1 << 6
    assert len(threads["daemon"]) > 1 and len(threads["counter"]) > 1, "threads looked at"
    for name, creds in ((name, each) for name, tasks in threads.items() for each in tasks):
        assert creds.uid == box.uid and creds.no_new_privs, name
        assert {k: v for k, v in creds.caps.items() if k != "CapBnd"} == dict.fromkeys(
            ("CapInh", "CapPrm", "CapEff", "CapAmb"), 0), f"{name} holds capabilities"
        # Lowering the bounding set needs CAP_SETPCAP; with nothing permitted, inheritable or
        # ambient and no new privileges, nothing in it can be raised again.
        assert creds.caps["CapBnd"] & ~setgid == 0, name
    held = {name: tasks[0] for name, tasks in threads.items()}
    assert all(each.groups == held[name].groups for name, tasks in threads.items()
               for each in tasks), "every thread has its process's groups"
    assert held["daemon"].groups == {box.other}, "the daemon dropped the camera group only"
    assert held["zygote"].groups == held["counter"].groups == {box.video}, \
        "the counters keep the camera group and nothing else"
    daemon_creds, counter_creds = held["daemon"], held["counter"]
    refused = open_as(box.node, daemon_creds.uid, daemon_creds.gid, daemon_creds.groups)
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused
    assert open_as(box.node, counter_creds.uid, counter_creds.gid,
                   counter_creds.groups).returncode == 0
    assert "camera access withdrawn from the daemon: groups video" in text, text[-3000:]
    assert f"counter processes get the groups video ({box.video})" in text
    assert "keeps camera access" not in text and "counter zygote: " not in text


def test_without_cap_setgid_the_daemon_says_what_is_not_enforced(
        box: Box, broker: Broker, recorder: Recorder) -> None:
    daemon = start(box, broker, NO_CAPS, command="simulate")
    log = box.root / "agent.log"
    try:
        assert wait_until(lambda: counted(recorder), 120), log.read_text()[-3000:]
        assert box.video in Creds.of(daemon.pid).groups
    finally:
        code = stop(daemon)
    text = log.read_text()
    assert code == 0, text[-3000:]
    warnings = re.findall(r".*the daemon keeps camera access \(not enforced: .*", text)
    assert len(warnings) == 1, text[-3000:]
    assert f"camera groups video ({box.video}) kept: no CAP_SETGID" in warnings[0]
    assert warnings[0].endswith("the systemd unit (systemd/lokaalmeten-agent.service) "
                                "withdraws it")
