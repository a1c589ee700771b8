"""Keeping BMC secrets out of logs and messages (layer 2).

Client libraries log what they send: sushy logs every request at DEBUG (its ``sanitize`` masks
``Password`` and ``X-Auth-Token`` keys, not a header written out as text), and urllib3 logs
connections. ``REDACT`` sits on those libraries' loggers: it removes every password and session
token racker has registered and any ``Authorization``/``X-Auth-Token`` value, and it lets
sushy's records through only when racker itself logs at DEBUG (``-vv``), as DEBUG records of
``racker.power.sushy``: sushy logs routine events (the fallback to Basic auth) as WARNING and
ERROR, and racker reports failures itself, as typed errors.
"""

from __future__ import annotations

import logging
import re
import threading

_HEADER_VALUE = re.compile(
    r"""(?P<name>authorization|x-auth-token)(?P<sep>['"]?\s*[:=]\s*['"]?)"""
    r"""(?P<value>(?:basic\s+|bearer\s+)?[^'",}\s]+)""",
    re.IGNORECASE,
)


_SHOWN_AT = logging.getLogger("racker.power.sushy")


class RedactSecrets(logging.Filter):
    """On sushy's (and urllib3's) loggers: secrets out; sushy's records go to racker's
    handlers as DEBUG (``racker.power.sushy``), and only when racker logs at DEBUG.

    A logger's filters do not apply to its children's records, so ``install`` puts one on
    every logger of those packages that exists (and is called again at each login).
    """

    def __init__(self) -> None:
        super().__init__("racker-redact")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 3:  # shorter ones would blank out ordinary words
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        text = _HEADER_VALUE.sub(lambda m: f"{m['name']}{m['sep']}***", text)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        self._redact_record(record)
        if not record.name.startswith("sushy"):
            return True
        # sushy's warnings and errors are details of a failure racker reports itself: shown
        # with racker's own debug output (-vv, through racker's handlers), never otherwise.
        if _SHOWN_AT.isEnabledFor(logging.DEBUG):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            _SHOWN_AT.handle(record)
        return False

    def _redact_record(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: keep nothing of it
            message = "(unformattable log record)"
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None

    def install(self) -> None:
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("sushy", "urllib3", "requests"):
                logger = logging.getLogger(name)
                if self not in logger.filters:
                    logger.addFilter(self)


REDACT = RedactSecrets()


def scrub(text: str) -> str:
    """A third party's text (an exception, a BMC's message) without any secret racker knows."""
    return REDACT.redact(text)
