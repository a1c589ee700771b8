"""The self-test's TFTP checks: each first stage fetched with tftpy, compared with its file."""

from __future__ import annotations

import functools
import hashlib
import logging
import tempfile
from pathlib import Path

from racker.selftest.report import Check, CheckFailed, timed
from racker.selftest.target import Target

BLKSIZE = 1428  # fits a 1500-byte MTU (RFC 2348), as the firmware asks


def check_tftp(target: Target, timeout: float = 3.0) -> list[Check]:
    """One check per first stage TFTP serves (racker.yaml's loaders)."""
    return [
        timed("tftp", name, functools.partial(_fetch, target, name, found, timeout))
        for name, found in target.first_stages.items()
    ]


def _fetch(target: Target, name: str, found: Path | str, timeout: float) -> str:
    import tftpy

    if isinstance(found, str):
        raise CheckFailed(f"not on disk: {found}")
    expected = _digest(found.read_bytes())
    logging.getLogger("tftpy").setLevel(logging.CRITICAL)  # it logs every packet at INFO
    with tempfile.TemporaryDirectory(prefix="racker-selftest-") as tmp:
        out = Path(tmp) / "download"
        client = tftpy.TftpClient(target.server_ip, 69, options={"blksize": BLKSIZE})
        try:
            client.download(name, str(out), timeout=max(1, int(timeout)), retries=2)
        except tftpy.TftpException as exc:
            raise CheckFailed(f"TFTP: {exc}") from None
        data = out.read_bytes()
    if _digest(data) != expected:
        raise CheckFailed(
            f"{len(data)} bytes differ from {found} ({found.stat().st_size} bytes):"
            " changed since racker serve opened it?"
        )
    return f"{len(data)} bytes, identical to {found}"


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
