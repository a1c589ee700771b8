"""Keep tokens out of aiohttp's own log lines.

Our access log writes paths only, but aiohttp's request handler logs a request it cannot parse
with its raw request line (query and token included) at ERROR. The server's handler gets a
logger of ours whose filter blanks every ``token=`` value, in the message and the traceback.
"""

from __future__ import annotations

import logging
import re

_TOKEN_RE = re.compile(r"(token=)[^&\s'\"\\]*")


def redact(text: str) -> str:
    return _TOKEN_RE.sub(r"\1<redacted>", text)


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def server_logger() -> logging.Logger:
    """The logger for aiohttp's request handler (``racker.http.server``), filter attached once."""
    logger = logging.getLogger("racker.http.server")
    if not any(isinstance(f, RedactTokens) for f in logger.filters):
        logger.addFilter(RedactTokens())
    return logger
