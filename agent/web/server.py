"""The status page's HTTP server: the standard library's, shut tight.

``http.server`` is enough for a page one person opens now and then, and costs the
daemon no dependency and, while nobody asks, nothing but one sleeping thread. What a
municipality's IT will look for is here: GET and HEAD only, no CORS headers, a strict
Content-Security-Policy (the page's own script and style only, no frames, no forms,
no images, nothing from another site), no caching, a Host check against DNS
rebinding, an optional token compared in constant time, at most ``MAX_CLIENTS``
requests at once and a read timeout, so a slow client cannot pile up threads.

One exception to read-only: camera set-up (``/setup``, ``agent.status.camera_setup``)
takes POSTs to ``/api/setup/<action>``. Each needs the token in an
``X-Lokaalmeten-Token`` header, never a cookie or the browser's remembered Basic
credentials, so another site cannot forge one (a cross-site request with a custom
header needs a CORS preflight, which this server refuses); without a configured token
set-up is read-only. Bodies are JSON of at most ``MAX_BODY`` bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import selectors
import socket
import threading
from collections.abc import Iterable
from functools import cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

MAX_CLIENTS = 8
REQUEST_TIMEOUT_S = 10.0
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8"),
          "/setup": ("setup.html", "text/html; charset=utf-8"),
          "/setup.js": ("setup.js", "text/javascript; charset=utf-8"),
          "/setup.css": ("setup.css", "text/css; charset=utf-8")}
MAX_BODY = 64 * 1024
TOKEN_HEADER = "X-Lokaalmeten-Token"
SECURITY_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "
     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)
REALM = 'Basic realm="lokaalmeten status", charset="UTF-8"'


class Site(Protocol):
    """What the server serves; the status service implements it."""

    def status_json(self) -> bytes: ...

    def history_json(self, sensor: str, quantity: str, hours: float) -> bytes | None: ...


class SetupSite(Protocol):
    """Camera set-up (``agent.status.camera_setup.CameraSetup``)."""

    def setup_json(self) -> bytes: ...

    def setup_post(self, action: str, body: bytes) -> tuple[HTTPStatus, bytes]: ...


@cache
def asset(name: str) -> bytes:
    """A shipped file, read once on first use."""
    return (STATIC / name).read_bytes()


def token_matches(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>`` or Basic with the token as password (any user)."""
    if not header:
        return False
    scheme, _, credentials = header.strip().partition(" ")
    given = credentials.strip()
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(given, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    elif scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.encode(), token.encode())


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """An IP literal, or a name the box is known by: a rebinding site's name is not."""
    if header is None:
        return True  # HTTP/1.0 without Host: not a browser, so not a rebinding attack
    host = header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.rstrip(".") in names
    return True


def known_names(extra: Iterable[str]) -> frozenset[str]:
    own = socket.gethostname().lower()
    return frozenset({"localhost", own, f"{own}.local", *extra})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: Site, token: str | None,
                 names: frozenset[str], setup: SetupSite | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self._wake_read, self._wake_write = socket.socketpair()  # before a failed bind closes
        super().__init__(address, _Handler)
        self.site = site
        self.setup = setup
        self.token = token
        self.names = names
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def serve_until_woken(self) -> None:
        """Serve until ``wake()``. ``serve_forever`` looks for a shutdown every 0.5 s;
        this sleeps until a client or the wake-up comes, so stopping is immediate."""
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake_read, selectors.EVENT_READ)
            while not any(key.fileobj is self._wake_read for key, _ in selector.select()):
                self.handle_request()  # the listening socket is readable: no wait

    def wake(self) -> None:
        self._wake_write.send(b"\0")

    def server_close(self) -> None:
        super().server_close()
        self._wake_read.close()
        self._wake_write.close()

    def process_request(self, request: socket.socket,  # type: ignore[override]
                        client_address: tuple[str, int]) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: refuse rather than queue threads
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        log.exception("status page: request from %s failed", client_address[0])

    def process_request_thread(self, request: socket.socket,  # type: ignore[override]
                               client_address: tuple[str, int]) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "lokaalmeten"
    sys_version = ""

    def version_string(self) -> str:
        return self.server_version
    timeout = REQUEST_TIMEOUT_S

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_POST(self) -> None:
        """Camera set-up's actions only; the token header is required (module docstring)."""
        setup = self.server.setup
        action = urlsplit(self.path).path.removeprefix("/api/setup/")
        length = int(self.headers.get("Content-Length") or -1)
        if not host_allowed(self.headers.get("Host"), self.server.names):
            self._plain(HTTPStatus.MISDIRECTED_REQUEST, "unknown host name", True)
        elif setup is None or action == self.path:
            self._refuse_method()
        elif self.server.token is None:
            self._plain(HTTPStatus.FORBIDDEN, "camera set-up needs [status] token_file", True)
        elif not hmac.compare_digest(self.headers.get(TOKEN_HEADER, "").encode(),
                                     self.server.token.encode()):
            self._plain(HTTPStatus.FORBIDDEN, f"the token is needed in {TOKEN_HEADER}", True)
        elif self.headers.get_content_type() != "application/json" \
                or not 0 <= length <= MAX_BODY:
            self._plain(HTTPStatus.BAD_REQUEST, f"JSON of at most {MAX_BODY} bytes", True)
        else:
            status, answer = setup.setup_post(action, self.rfile.read(length))
            self._send(status, "application/json", answer, True)

    def _refuse_method(self) -> None:
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse_method

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS:
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        log.debug("status page: %s " + format, self.address_string(), *args)

    def _serve(self, body: bool) -> None:
        if not host_allowed(self.headers.get("Host"), self.server.names):
            self._plain(HTTPStatus.MISDIRECTED_REQUEST, "unknown host name; open the page by "
                        "the box's address or add the name to [status] allowed_hosts", body)
            return
        token = self.server.token
        if token is not None and not token_matches(self.headers.get("Authorization"), token):
            self.send_response(HTTPStatus.UNAUTHORIZED)
            self.send_header("WWW-Authenticate", REALM)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            text = b"the token is needed (any user name, the token as password)\n"
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            if body:
                self.wfile.write(text)
            return
        url = urlsplit(self.path)
        if url.path in ASSETS:
            name, content_type = ASSETS[url.path]
            self._send(HTTPStatus.OK, content_type, asset(name), body)
        elif url.path == "/api/status":
            self._send(HTTPStatus.OK, "application/json", self.server.site.status_json(), body)
        elif url.path == "/api/setup" and self.server.setup is not None:
            self._send(HTTPStatus.OK, "application/json", self.server.setup.setup_json(), body)
        elif url.path == "/api/history":
            self._history(parse_qs(url.query), body)
        else:
            self._plain(HTTPStatus.NOT_FOUND, "not found", body)

    def _history(self, query: dict[str, list[str]], body: bool) -> None:
        sensor = query.get("sensor", [""])[0]
        quantity = query.get("quantity", [""])[0]
        try:
            hours = float(query.get("hours", ["24"])[0])
        except ValueError:
            hours = -1.0
        if not sensor or not quantity or not 0 < hours <= 168:
            self._plain(HTTPStatus.BAD_REQUEST,
                        "needs sensor=, quantity= and optionally hours= (0-168)", body)
            return
        data = self.server.site.history_json(sensor, quantity, hours)
        if data is None:
            self._plain(HTTPStatus.NOT_FOUND, "no history for that sensor and quantity", body)
        else:
            self._send(HTTPStatus.OK, "application/json", data, body)

    def _plain(self, status: HTTPStatus, text: str, body: bool) -> None:
        self._send(status, "text/plain; charset=utf-8", (text + "\n").encode(), body)

    def _send(self, status: HTTPStatus, content_type: str, data: bytes, body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)


class StatusServer:
    """The page on a daemon thread; a port in use costs the page, never the agent."""

    def __init__(self, site: Site, bind: str, port: int, token: str | None,
                 allowed_hosts: Iterable[str] = (), *, setup: SetupSite | None = None) -> None:
        self._site, self._bind, self._port = site, bind, port
        self._setup = setup
        self._token = token
        self._names = known_names(allowed_hosts)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        try:
            self._server = _Server((self._bind, self._port), self._site, self._token,
                                   self._names, self._setup)
        except OSError as exc:
            log.error("status page not started on %s port %d: %s (the agent runs on "
                      "without it)", self._bind, self._port, exc.strerror or exc)
            return False
        self._thread = threading.Thread(target=self._server.serve_until_woken,
                                        name="status-page", daemon=True)
        self._thread.start()
        log.info("status page on http://%s:%d/%s", self._bind if ":" not in self._bind
                 else f"[{self._bind}]", self._port,
                 "" if self._token is None else " (token required)")
        return True

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.wake()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._server.server_close()
        self._server = None
