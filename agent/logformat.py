"""One log format for the daemon, the counter process and every command.

Under systemd, stderr goes to the journal (``JOURNAL_STREAM`` is set), which
stamps each line with its own time and reads a ``<N>`` prefix as the line's
syslog priority: so there each line starts with its priority and no time, and
``journalctl -p warning`` shows warnings and worse. Elsewhere (a terminal,
``simulate``, the tests) lines carry a time and the level's name. Either way
credentials in URLs are redacted (``agent.redact``).
"""

from __future__ import annotations

import logging
import os
import sys

from agent.redact import redact_logging

SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4,
                   logging.INFO: 6, logging.DEBUG: 7}


class JournalFormatter(logging.Formatter):
    """Every line of a record (tracebacks too) prefixed with its syslog priority."""

    def format(self, record: logging.LogRecord) -> str:
        priority = SYSLOG_PRIORITY.get(record.levelno, 6 if record.levelno < 30 else 3)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def configure(level: str, name_prefix: str = "") -> None:
    """Log to stderr from ``level`` on; ``name_prefix`` marks a process (``counter[cam]``)."""
    handler = logging.StreamHandler(sys.stderr)
    tag = f"{name_prefix} " if name_prefix else ""
    if os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter(f"{tag}%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level, logging.INFO), handlers=[handler])
    redact_logging()
