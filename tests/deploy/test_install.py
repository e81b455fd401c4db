"""``scripts/install`` for real, in a fresh Debian bookworm root made by debootstrap.

The README's steps run there as written: install as root (the administrator ``ada``
ran sudo), ``lokaalmeten init``, then ``check-config`` and ``status`` as ``ada``
without sudo, while a user outside the admin group is refused. systemd cannot be PID 1
in a chroot, so ``systemctl`` runs offline (``SYSTEMD_OFFLINE=1``: ``enable`` works,
``start``/``restart`` are skipped) and the agent is started as the unit would start it:
``lokaalmeten run`` as the service user with its groups, talking to a real Mosquitto on
this machine, and reloaded with the unit's ``ExecReload`` commands.

Needs root, debootstrap, and Debian's and PyPI's package servers (about 4 minutes; the
bare root is built once and kept in ``~/.cache/lokaalmeten/install-test``). Skipped
where those are missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mqtt_broker import Broker, Recorder, free_port, wait_until

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEBOOTSTRAP = shutil.which("debootstrap", path=PATH)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or DEBOOTSTRAP is None,
                       reason="needs root and debootstrap"),
]

ROOT = Path(__file__).resolve().parents[2]
BASE = Path(os.environ.get("LOKAALMETEN_INSTALL_TEST_BASE",
                           Path.home() / ".cache" / "lokaalmeten" / "install-test" / "bookworm"))
MIRROR = "http://deb.debian.org/debian"
ETC = "/etc/lokaalmeten"
CONFIG = f"{ETC}/agent.toml"
AGENT = "/opt/lokaalmeten/venv/bin/lokaalmeten"
# Mount what a program expects (proc, a private devpts for the emulators' ptys) in a
# mount namespace of the command's own: the mounts vanish with it, nothing to clean up.
NETWORK = ("PIP_CERT", "PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT", "SSL_CERT_FILE",
           "REQUESTS_CA_BUNDLE", "http_proxy", "https_proxy", "no_proxy")
"""How this machine reaches the package servers: handed on into the root, with the local
CA certificates (a network that inspects TLS needs both; a Pi on the internet neither)."""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
ENTER = ('mount -t proc proc "$0/proc" && '
         'mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$0/dev/pts" && '
         'exec chroot "$0" "$@"')


def bare_root() -> Path:
    """A minimal bookworm (as on a fresh Raspberry Pi OS Lite: systemd, sudo, CA certs)."""
    if not (BASE / "etc" / "os-release").exists():
        partial = BASE.with_name(BASE.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(DEBOOTSTRAP), "--variant=minbase",
                        "--include=systemd,sudo,ca-certificates", "bookworm", str(partial),
                        MIRROR], check=True, capture_output=True, timeout=1200,
                       env={**os.environ, "PATH": PATH})
        partial.rename(BASE)
    return BASE


class Box:
    """A throwaway copy of the bare root with this checkout in /src/lokaalmeten."""

    def __init__(self, path: Path) -> None:
        self.path = path
        subprocess.run(["cp", "-a", str(bare_root()), str(path)], check=True)
        (path / "dev" / "ptmx").unlink(missing_ok=True)
        (path / "dev" / "ptmx").symlink_to("pts/ptmx")
        shutil.copy("/etc/resolv.conf", path / "etc" / "resolv.conf")
        if LOCAL_CAS.is_dir():
            shutil.copytree(LOCAL_CAS, path / LOCAL_CAS.relative_to("/"), dirs_exist_ok=True)
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"],
                               cwd=ROOT, check=True, capture_output=True).stdout
        source = path / "src" / "lokaalmeten"
        for name in filter(None, files.decode().split("\0")):
            if (ROOT / name).is_file():
                (source / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, source / name)

    def command(self, *argv: str, user: str | None = None, **env: str) -> list[str]:
        as_user = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] \
            if user else []
        home = f"/home/{user}" if user else "/root"
        env = {name: os.environ[name] for name in NETWORK if name in os.environ} | env
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", ENTER,
                str(self.path), "env", "-i", f"PATH={PATH}", f"HOME={home}", "LANG=C.UTF-8",
                "SYSTEMD_OFFLINE=1", *(f"{k}={v}" for k, v in env.items()), *as_user, *argv]

    def run(self, *argv: str, user: str | None = None, stdin: str | None = None,
            timeout_s: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*argv, user=user, **env), input=stdin, text=True,
                              capture_output=True, timeout=timeout_s, check=False)

    def ok(self, *argv: str, **kwargs: object) -> str:
        result = self.run(*argv, **kwargs)  # type: ignore[arg-type]
        assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
        return result.stdout + result.stderr

    def stat(self, path: str) -> str:
        return self.ok("stat", "-c", "%U:%G %a", path).strip()


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    try:
        the_box = Box(tmp_path_factory.mktemp("install") / "root")
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"no Debian root: {exc.stderr or exc}")
    the_box.ok("update-ca-certificates")
    the_box.ok("useradd", "--create-home", "ada")  # the administrator who runs sudo
    the_box.ok("useradd", "--create-home", "eve")  # a user of the box, not an administrator
    yield the_box
    shutil.rmtree(the_box.path, ignore_errors=True)


def test_readme_steps_work_as_written(box: Box, broker: Broker, recorder: Recorder) -> None:
    out = box.ok("/src/lokaalmeten/scripts/install", SUDO_USER="ada", timeout_s=1200)
    assert "sudo lokaalmeten init" in out, "no config yet: the installer says what is next"
    assert "ada joined the group lokaalmeten-admin" in out
    assert box.ok("readlink", "/usr/local/bin/lokaalmeten").strip() == AGENT
    assert box.ok("lokaalmeten", "--version", user="ada").startswith("lokaalmeten ")
    assert box.stat(ETC) == "root:lokaalmeten-admin 2750"
    assert "lokaalmeten-admin" in box.ok("id", "-nG", "lokaalmeten")
    assert box.ok("systemctl", "is-enabled", "lokaalmeten-agent").strip() == "enabled"
    assert box.ok("systemctl", "is-enabled", "lokaalmeten-setup.path").strip() == "enabled"

    # sudo lokaalmeten init (answers as flags; the password on stdin, as a fleet would)
    out = box.ok("lokaalmeten", "init", "--yes", "--simulate", "--device-id", "chroot-box",
                 "--broker", f"{broker.host}:{broker.port}", "--username", "chroot-box",
                 "--allow-plaintext-credentials", "--password-stdin", stdin="pw-123\n")
    assert f"wrote {CONFIG}" in out and f"password in {ETC}/mqtt-password" in out
    assert box.stat(CONFIG) == "root:lokaalmeten-admin 640"
    assert box.stat(f"{ETC}/mqtt-password") == "lokaalmeten:lokaalmeten 600"
    page = free_port()  # sudoedit: the page on a port of its own, not 8470 of this machine
    config = box.path / CONFIG.lstrip("/")
    config.write_text(config.read_text() + f"\n[status]\nport = {page}\n")

    # README: lokaalmeten check-config --config /etc/lokaalmeten/agent.toml, no sudo
    out = box.ok("lokaalmeten", "check-config", "--config", CONFIG, user="ada")
    assert f"{CONFIG}: OK — device chroot-box" in out
    assert "readable only by its owner 'lokaalmeten'" in out
    refused = box.run("lokaalmeten", "check-config", user="eve")
    assert refused.returncode == 2 and "cannot read: Permission denied" in refused.stderr

    # The unit's ExecStartPre and ExecStart, as its user with its groups.
    box.ok(AGENT, "check-config", "--config", CONFIG, user="lokaalmeten")
    log = box.path.parent / "agent.log"
    with log.open("wb") as out_file:
        agent = subprocess.Popen(box.command(AGENT, "run", "--config", CONFIG,
                                             user="lokaalmeten"),
                                 stdout=out_file, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: any(m["device_id"] == "chroot-box" and m["quantity"] ==
                                      "uptime" for m in recorder.measurements()), 60), \
            log.read_text()
        status = box.run("lokaalmeten", "status", user="ada")
        assert "chroot-box" in status.stdout, status.stdout + status.stderr
        assert status.returncode == 1, "no sensor hardware in the chroot: 'something wrong'"
        # systemctl reload: ExecReload's check, then SIGHUP to the main process
        config.write_text(config.read_text().replace(f"port = {page}", f"port = {page}\n"
                                                     "broker_down_after_s = 60"))
        box.ok(AGENT, "check-config", "--config", CONFIG, user="lokaalmeten")
        agent.send_signal(signal.SIGHUP)
        assert wait_until(lambda: "reload: restarting status page" in log.read_text(), 30), \
            log.read_text()
        # The page comes back on its port once the reload has restarted it (exit 3 until
        # then: cannot reach the page); then the same verdict as before.
        assert wait_until(lambda: box.run("lokaalmeten", "status", user="ada").returncode == 1,
                          30), log.read_text()
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(30) == 0, log.read_text()

    # Re-running the installer updates in place and, with a valid config, (re)starts it.
    out = box.ok("/src/lokaalmeten/scripts/install", SUDO_USER="ada", timeout_s=1200)
    assert "==> running" in out and box.stat(CONFIG) == "root:lokaalmeten-admin 640"
