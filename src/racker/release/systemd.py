"""systemd from racker's side (layer 2): sd_notify, and systemctl only where systemd runs.

``notify`` implements the sd_notify(3) datagram protocol in a few lines (no libsystemd):
one datagram to the unix socket named by ``$NOTIFY_SOCKET`` ("@" means the abstract
namespace). Without the variable (not under systemd) it does nothing.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("racker.release")

UNIT_NAME = "racker.service"


def notify(message: str, environ: Mapping[str, str]) -> bool:
    """Send ``message`` (e.g. "READY=1") to systemd at ``environ``'s NOTIFY_SOCKET (the CLI
    reads the environment); True when a socket took it."""
    env = environ
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # sd_notify(3): abstract namespace socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify %s to %s failed: %s", message, env["NOTIFY_SOCKET"], exc)
        return False
    return True


class Systemctl:
    """Calls ``systemctl`` only when systemd is the running init (sd_booted(3): the directory
    /run/systemd/system exists) and the command is on PATH; otherwise every call is a no-op
    that says so, so installing into a container or a test root never touches the host."""

    def __init__(self, root: Path = Path("/"), command: str = "systemctl") -> None:
        self.root = root
        self.command = command

    def available(self) -> bool:
        booted = (self.root / "run/systemd/system").is_dir()
        return booted and shutil.which(self.command) is not None

    def run(self, *args: str) -> bool:
        """True when systemctl ran and succeeded; False when it failed or is not available."""
        if not self.available():
            log.info("systemd is not running here: skipped systemctl %s", " ".join(args))
            return False
        result = self._spawn([self.command, *args])
        if result.returncode != 0:
            log.warning(
                "systemctl %s failed (%d): %s", " ".join(args), result.returncode,
                result.stderr.strip(),
            )  # fmt: skip
            return False
        return True

    def is_active(self) -> bool:
        return self.run("is-active", "--quiet", UNIT_NAME)

    def _spawn(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, check=False)
