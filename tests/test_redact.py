"""Credentials never reach a log line, an error or command output (issue 8, item 4).

The table pins ``redact_url`` on the URL forms cameras use; the end-to-end
tests run ``lokaalmeten count`` and the daemon as processes, at DEBUG, on a
camera URL full of secrets, and search everything they print.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.redact import RedactingFormatter, redact_logging, redact_text, redact_url
from tests.integration.fast_box import fast_head
from tests.mqtt_broker import Broker, free_port, wait_until
from tests.vision.streams import INT8_MODEL

ROOT = Path(__file__).resolve().parents[1]

URLS = [
    # userinfo (Hikvision, Dahua, Axis, Reolink RTSP)
    ("rtsp://admin:secret@192.168.1.10:554/stream2", "rtsp://***@192.168.1.10:554/stream2"),
    ("rtsp://admin@cam.local/live", "rtsp://***@cam.local/live"),
    ("rtsp://admin:p@ss:w0rd@127.0.0.1:8554/live", "rtsp://***@127.0.0.1:8554/live"),
    ("rtsp://admin:p%40ss%3Aw0rd@192.168.1.11/cam/realmonitor?channel=1&subtype=0",
     "rtsp://***@192.168.1.11/cam/realmonitor?channel=1&subtype=0"),
    ("rtsp://admin:pa/ss@192.168.1.12:554/Streaming/Channels/101",
     "rtsp://***@192.168.1.12:554/Streaming/Channels/101"),
    ("rtsp://admin:pa%2Fss@10.0.0.5/h264Preview_01_main", "rtsp://***@10.0.0.5/h264Preview_01_main"),
    ("rtsp://admin:ab#c?d@10.0.0.6:554/live", "rtsp://***@10.0.0.6:554/live"),
    ("rtsp://admin:pw@[fe80::1%25eth0]:554/live", "rtsp://***@[fe80::1%25eth0]:554/live"),
    ("http://root:pass@axis.local/axis-cgi/mjpg/video.cgi?resolution=640x480",
     "http://***@axis.local/axis-cgi/mjpg/video.cgi?resolution=640x480"),
    # nothing to hide
    ("rtsp://[2001:db8::5]:554/live?channel=1", "rtsp://[2001:db8::5]:554/live?channel=1"),
    ("http://cam.local/video.mjpg", "http://cam.local/video.mjpg"),
    ("http://cam.local/snap@2x.jpg", "http://cam.local/snap@2x.jpg"),
    ("/srv/cams/street.mp4", "/srv/cams/street.mp4"),
    # query parameters (Foscam, Reolink, Hikvision ISAPI, signed links), any case
    ("http://192.168.1.20:88/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=admin&pwd=s3cr3t",
     "http://192.168.1.20:88/cgi-bin/CGIStream.cgi?cmd=GetMJStream&usr=***&pwd=***"),
    ("http://192.168.1.21/cgi-bin/api.cgi?cmd=Snap&channel=0&user=admin&password=x%26y",
     "http://192.168.1.21/cgi-bin/api.cgi?cmd=Snap&channel=0&user=***&password=***"),
    ("http://192.168.1.21/cgi-bin/api.cgi?cmd=Snap&channel=0&token=abc123",
     "http://192.168.1.21/cgi-bin/api.cgi?cmd=Snap&channel=0&token=***"),
    ("http://10.0.0.9/ISAPI/Streaming/channels/101/picture?auth=YWRtaW46MTIzNDU=",
     "http://10.0.0.9/ISAPI/Streaming/channels/101/picture?auth=***"),
    ("https://b.s3.amazonaws.com/c.mp4?X-Amz-Credential=AKIA%2F2026&X-Amz-Signature=9f&X-Amz-Expires=60",
     "https://b.s3.amazonaws.com/c.mp4?X-Amz-Credential=***&X-Amz-Signature=***&X-Amz-Expires=60"),
    ("https://cam.example.com/live?access_token=ab&cd&channel=1",
     "https://cam.example.com/live?access_token=***&channel=1"),
    ("http://cam/live?sig=ab_cd==&channel=1;Api_Key=k1;PassWord=x",
     "http://cam/live?sig=***&channel=1;Api_Key=***;PassWord=***"),
    # path segments (Xiongmai/XMEye DVRs, REST-style routes)
    ("rtsp://192.168.1.30:554/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp?real_stream",
     "rtsp://192.168.1.30:554/user=***_password=***_channel=1_stream=0.sdp?real_stream"),
    ("rtsp://192.168.1.31:554/user=admin&password=&channel=1&stream=0.sdp?",
     "rtsp://192.168.1.31:554/user=***&password=***&channel=1&stream=0.sdp?"),
    ("http://cam/user=admin;password=x/video.mjpg", "http://cam/user=***;password=***/video.mjpg"),
    ("http://cam/api/user/admin/password/secret123/snapshot.jpg",
     "http://cam/api/user/***/password/***/snapshot.jpg"),
    # everything at once
    ("rtsp://admin:p@ss:w0rd@127.0.0.1:554/live?password=secret2",
     "rtsp://***@127.0.0.1:554/live?password=***"),
    # ambiguous: a port, then '@' in the path; could be a password "8080/snap" (hide more)
    ("http://host:8080/snap@2x.jpg", "http://***@2x.jpg"),
]


@pytest.mark.parametrize(("url", "expected"), URLS)
def test_every_url_form_is_redacted_exactly(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_every_url_in_a_message_is_redacted_and_the_rest_kept() -> None:
    message = ("VideoCapture('rtsp://admin:p@ss@10.0.0.5/live?token=t0k') failed; "
               "fallback http://u:pw@cam.local/snap.jpg?channel=2 also failed; "
               "camera_rtsp://a:b@h/x=1 (a word right before the scheme)")
    assert redact_text(message) == (
        "VideoCapture('rtsp://***@10.0.0.5/live?token=***') failed; "
        "fallback http://***@cam.local/snap.jpg?channel=2 also failed; "
        "camera_rtsp://***@h/x=1 (a word right before the scheme)")


def test_log_handlers_redact_messages_and_tracebacks() -> None:
    stream = io.StringIO()
    logger = logging.getLogger("tests.redact")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        redact_logging(logger)
        redact_logging(logger)  # idempotent: one wrapper, not two
        assert isinstance(handler.formatter, RedactingFormatter)
        assert not isinstance(handler.formatter.inner, RedactingFormatter)
        logger.warning("camera %s dropped", "rtsp://admin:hunter2@10.0.0.5/live")
        try:
            raise OSError("cannot open http://cam/snap.cgi?usr=admin&pwd=hunter3")
        except OSError:
            logger.exception("opening failed")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "WARNING camera rtsp://***@10.0.0.5/live dropped" in text
    assert "OSError: cannot open http://cam/snap.cgi?usr=***&pwd=***" in text
    assert "hunter" not in text


SECRETS = ("w0rd", "secret2", "t0ken3", "admin:p")


def secret_url(port: int) -> str:
    """An RTSP camera URL with a password containing '@' and ':' and secrets in the query."""
    return f"rtsp://admin:p@ss:w0rd@127.0.0.1:{port}/Streaming/Channels/101?password=secret2" \
           "&token=t0ken3"


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    """``lokaalmeten ...`` as a process, stdout and stderr in one text (C-level output too)."""
    return subprocess.run([sys.executable, "-m", "agent", *argv], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=120, check=False)


def assert_no_secret(output: str) -> None:
    leaked = [s for s in SECRETS if s in output]
    assert not leaked, f"{leaked} printed:\n{output}"


@pytest.mark.slow  # runs lokaalmeten as a process
def test_count_on_an_unreachable_camera_names_it_without_the_password() -> None:
    port = free_port()  # nothing listens there
    result = run_cli("count", secret_url(port), "--line", "door=10,10,20,20",
                     "--model", str(INT8_MODEL), "--log-level", "DEBUG")
    assert result.returncode == 1, result.stdout
    assert_no_secret(result.stdout)
    assert f"error: cannot open video rtsp://***@127.0.0.1:{port}/Streaming/Channels/101" \
           "?password=***&token=***" in result.stdout


@pytest.mark.slow  # runs lokaalmeten as a process
def test_a_bad_config_with_a_camera_url_is_refused_without_the_password(
        tmp_path: Path) -> None:
    url = secret_url(free_port())
    config = tmp_path / "bad.toml"
    config.write_text(f'device_id = "box"\nlog_level = "DEBUG"\n[cameras.street]\n'
                      f'source = "{url}"\nfps_cap = 0\n')
    counted = run_cli("count", url, "--config", str(config), "--camera", "street",
                      "--log-level", "DEBUG")
    checked = run_cli("check-config", "--config", str(config), "--log-level", "DEBUG")
    for result in (counted, checked):
        assert result.returncode == 2, result.stdout
        assert "cameras.street.fps_cap" in result.stdout
        assert_no_secret(result.stdout)


@pytest.mark.slow
def test_the_daemon_logs_its_camera_without_the_password(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    port = free_port()
    config = tmp_path / "agent.toml"
    config.write_text('log_level = "DEBUG"\n' + fast_head("cam-box", 2)
                      + f'[cameras.street]\nsource = "{secret_url(port)}"\n'
                        f'model = "{INT8_MODEL}"\ninterval_s = 2\nreconnect_min_s = 0.2\n')
    log = tmp_path / "agent.log"
    try:
        with log.open("wb") as out:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "agent", "simulate", "--config", str(config),
                 "--broker", f"{broker.host}:{broker.port}", "--state-dir", str(tmp_path)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                assert wait_until(lambda: log.read_text().count("cannot be opened") >= 2, 90), \
                    log.read_text()[-3000:]
            finally:
                daemon.terminate()
                daemon.wait(30)
    finally:
        broker.stop()
    text = log.read_text()
    assert_no_secret(text)
    assert f"camera source rtsp://***@127.0.0.1:{port}/Streaming/Channels/101?password=***" \
           "&token=*** cannot be opened" in text
