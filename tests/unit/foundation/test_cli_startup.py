"""`racker --help` stays fast: heavy libraries load only in the commands that need them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from racker.cli import JsonFormatter, setup_logging

HEAVY = ("scapy", "aiohttp", "pyghmi", "jinja2", "prometheus_client", "tftpy")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from racker.cli import cli\n"
        "try:\n"
        "    cli.main(['--help'], prog_name='racker')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_json_log_lines_are_json_with_extra_fields() -> None:
    record = logging.LogRecord("racker.dhcp", logging.INFO, __file__, 1, "ACK %s", ("m1",), None)
    record.fields = {"mac": "m1", "xid": 7}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == "ACK m1"
    assert entry["level"] == "info"
    assert entry["logger"] == "racker.dhcp"
    assert entry["mac"] == "m1"
    assert entry["xid"] == 7


def test_verbosity_levels() -> None:
    logger = logging.getLogger("racker")
    setup_logging(0, "text")
    assert logger.level == logging.WARNING
    setup_logging(1, "json")
    assert logger.level == logging.INFO
    assert isinstance(logger.handlers[0].formatter, JsonFormatter)
    setup_logging(2, "text")
    assert logger.level == logging.DEBUG
