"""Camera passwords out of every text the agent writes: log lines, errors, command output.

A camera source is a URL, and camera URLs carry credentials in three places:

* the userinfo: ``rtsp://admin:secret@192.168.1.10:554/Streaming/Channels/101``
  (Hikvision, Dahua/Amcrest ``/cam/realmonitor?channel=1&subtype=0``, Axis
  ``/axis-cgi/mjpg/video.cgi``, Reolink ``/h264Preview_01_main``);
* query parameters: Foscam ``videostream.cgi?usr=admin&pwd=secret``, Reolink
  ``/cgi-bin/api.cgi?cmd=Snap&user=admin&password=secret`` or ``&token=``,
  signed cloud links (``X-Amz-Signature=``, ``access_token=``);
* the path: Xiongmai/XMEye DVRs
  ``/user=admin_password=secret_channel=1_stream=0.sdp`` (also with ``&`` or
  ``;`` between the pairs), and ``/user/admin/password/secret/`` routes.

``redact_url`` replaces each secret by ``***`` and keeps scheme, host, port
and the rest readable (``rtsp://***@192.168.1.10:554/stream2``);
``redact_text`` does that to every URL inside a free-text message (an
exception from OpenCV or FFmpeg, a configuration error); ``RedactingFormatter``
applies it to everything a logging handler writes, so a URL that reaches a
log line by a path nobody thought of is still cleaned.

Ambiguity is resolved towards hiding more. Passwords are often typed
unencoded and may contain ``@``, ``:``, ``/``, ``?``, ``#`` or ``=``. When
the text before the first ``/``, ``?`` or ``#`` holds a ``:`` or an ``@``
(``user:pass``, ``user@``), the userinfo runs to the *last* ``@`` before the
query, across any ``/`` (FFmpeg stops at the first ``/``), or, when there is
none, to the last ``@`` of the URL. The price: in
``http://host:8080/snap@2x.jpg`` (a port, then an ``@`` in the path) the host
is hidden as well; ``http://host/snap@2x.jpg`` stays as it is. Parameter
names are matched by the words they contain (``pass``, ``pwd``, ``token``,
``key``, ``sig``, ...), so ``loginpas`` or ``X-Amz-Credential`` are hidden
too, and a value runs to the next ``name=``, so an unencoded ``&`` inside a
password hides the rest of it as well.

Not covered: credentials outside a ``scheme://`` URL (``admin:pw@host``
alone), and a password with an unencoded space or quote, which ends the URL
in free text.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote

MASK = "***"

_SECRET_WORDS = ("user", "usr", "login", "account", "pass", "pwd", "token", "auth", "secret",
                 "sig", "key", "cred", "session")
"""A parameter or path segment whose name contains one of these holds a secret."""
_SECRET_NAMES = frozenset({"u", "p", "pw"})
"""Short names that mean user or password on some cameras (contain no word above)."""

_URL = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)(.*)", re.DOTALL)
_KEY = re.compile(
    r"(?:^|(?<=[&;]))(?P<key>[^&;=]+)="  # name= at the start or after & or ;
    r"|(?<=_)(?P<sub>[A-Za-z]+)=(?=[^=&;])")  # XMEye's _name=value (not base64 '=' padding)


def redact_url(url: str) -> str:
    """``url`` with user names, passwords, tokens and signatures replaced by ``***``.

    Text that is not a ``scheme://`` URL comes back unchanged.
    """
    match = _SCHEME.fullmatch(url)
    if not match:
        return url
    scheme, rest = match.groups()
    at = _userinfo_end(rest)
    if at >= 0:
        scheme, rest = f"{scheme}{MASK}@", rest[at + 1:]
    host = re.split(r"[/?]", rest, maxsplit=1)[0]
    return scheme + host + _redact_tail(rest[len(host):])


def redact_text(text: str) -> str:
    """Every URL in a free-text message redacted (``redact_url``); the rest unchanged."""
    return _URL.sub(lambda m: redact_url(m.group(0)), text)


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and redacts URLs in everything it formats (tracebacks too)."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(self.inner.format(record))


def redact_logging(logger: logging.Logger | None = None) -> None:
    """Make every handler of ``logger`` (default: the root logger) redact what it writes."""
    for handler in (logger or logging.getLogger()).handlers:
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter))


def _userinfo_end(rest: str) -> int:
    """Index in ``rest`` (the URL after ``://``) of the ``@`` that ends the userinfo, or -1.

    Only when the part before the first ``/`` or ``?`` has a ``:`` or an ``@``
    (``user:pass``, ``user@``) is there userinfo; a plain host followed by an
    ``@`` in its path has none.
    """
    head = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" not in head and ":" not in head:
        return -1
    before_query = re.split(r"[?#]", rest, maxsplit=1)[0]
    at = before_query.rfind("@")
    return at if at >= 0 else rest.rfind("@")


def _redact_tail(tail: str) -> str:
    """Path and query with secret-named values hidden (``/password/x/``, ``name=value``)."""
    path, qmark, query = tail.partition("?")
    segments = path.split("/")
    for i in range(1, len(segments)):
        name = segments[i - 1]
        if segments[i] and "=" not in name and _is_secret_name(name):
            segments[i] = MASK
        else:
            segments[i] = _redact_pairs(segments[i])
    return "/".join(segments) + qmark + _redact_pairs(query)


def _redact_pairs(text: str) -> str:
    """``name=value`` pairs (separated by ``&``, ``;`` or XMEye's ``_``) with secrets hidden.

    A value runs up to the separator before the next ``name=``, so an
    unencoded ``&`` or ``_`` inside a password stays inside the hidden value.
    An empty secret is masked too: "this camera has no password" is a secret.
    """
    keys = list(_KEY.finditer(text))
    if not keys:
        return text
    out = [text[:keys[0].start()]]
    for k, key in enumerate(keys):
        end = keys[k + 1].start() - 1 if k + 1 < len(keys) else len(text)
        name = key.group("key") or key.group("sub")
        out.append(key.group(0))
        out.append(MASK if _is_secret_name(name) else text[key.end():end])
        out.append(text[end:keys[k + 1].start()] if k + 1 < len(keys) else "")
    return "".join(out)


def _is_secret_name(name: str) -> bool:
    words = unquote(name).strip().lower()
    return words in _SECRET_NAMES or any(w in words for w in _SECRET_WORDS)
