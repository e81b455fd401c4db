"""The ``[status]`` section: the local status page and its small history of values.

The page is on by default but reachable only from the box itself (127.0.0.1); an
operator opens it through ``ssh -L``. Binding it to the LAN is a deliberate act that
needs a token, so a box on a municipal network never shows its state to anyone who
happens to share the network.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from agent.config.mqtt import ConfigWarning

DEFAULT_PORT = 8470
MIN_TOKEN_CHARS = 16
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?"
                        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\Z")


def read_token(path: Path) -> str:
    """The token: the file's text without surrounding white space (``openssl rand -hex 16``)."""
    return path.read_text(encoding="utf-8").strip()


class StatusConfig(BaseModel):
    """Where the status page listens, who may read it, how much history the box keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    enabled: bool = Field(default=True, description="Serve the status page and keep its "
                          "history; false: no listening socket, no history file.")
    bind: str = Field(default="127.0.0.1", description="IP address to listen on: 127.0.0.1 "
                      "(the box only; use ssh -L), an address of the box, or 0.0.0.0 / :: for "
                      "every interface. Anything but a loopback address needs token_file.")
    port: int = Field(default=DEFAULT_PORT, ge=1, le=65535, description="TCP port.")
    token_file: FilePath | None = Field(
        default=None, description=f"File holding the access token (at least "
        f"{MIN_TOKEN_CHARS} characters, e.g. from `openssl rand -hex 16`); every request "
        "must then carry it (HTTP Basic password, any user name, or Bearer).")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Extra host names the page may be reached by (the "
        "Host header); IP addresses, localhost and the box's own host name always work. "
        "Guards against DNS rebinding.")
    history_days: float = Field(default=7.0, gt=0, le=7, description="Days of 5-minute "
                                "aggregates kept for the plots; older ones are pruned.")
    broker_down_after_s: float = Field(
        default=600.0, ge=0, le=86_400, description="A broker disconnected longer than this "
        "is a problem (page, `lokaalmeten status` exit code); shorter is a warning.")

    @field_validator("bind")
    @classmethod
    def _ip_address(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value))
        except ValueError as exc:
            raise ValueError("must be an IP address (127.0.0.1, 0.0.0.0, ::, or one of the "
                             "box's addresses), not a host name") from exc

    @field_validator("token_file")
    @classmethod
    def _token_usable(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        try:
            token = read_token(value)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read: {reason or exc}") from exc
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ValueError(f"the token must be at least {MIN_TOKEN_CHARS} characters without "
                             "spaces (e.g. `openssl rand -hex 16 > FILE`)")
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _HOST_NAME.match(name)]
        if bad:
            raise ValueError(f"{bad} are not host names (letters, digits, '-' and dots)")
        return [name.lower() for name in value]

    @model_validator(mode="after")
    def _lan_needs_token(self) -> StatusConfig:
        if self.enabled and not self.loopback and self.token_file is None:
            raise ValueError(f"bind = {self.bind!r} makes the page reachable from the network: "
                             "set token_file too (or keep 127.0.0.1 and use ssh -L)")
        return self

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.bind).is_loopback

    def local_url(self) -> str:
        """Where a program on the box itself reaches the page."""
        address = ipaddress.ip_address(self.bind)
        if address.is_unspecified:
            host = "[::1]" if address.version == 6 else "127.0.0.1"
        else:
            host = f"[{address}]" if address.version == 6 else str(address)
        return f"http://{host}:{self.port}"

    def token(self) -> str | None:
        return None if self.token_file is None else read_token(self.token_file)

    def warnings(self) -> list[ConfigWarning]:
        """A token readable by every user of the box protects nothing from them."""
        if self.token_file is None:
            return []
        mode = stat.S_IMODE(os.stat(self.token_file).st_mode)
        if mode & 0o004:
            return [("status.token_file", f"{self.token_file} is readable by every user "
                     f"(mode {mode:04o}); chmod 640 it (owner the service user, group the "
                     "administrators who run `lokaalmeten status`)")]
        return []
