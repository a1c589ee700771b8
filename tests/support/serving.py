"""A running `racker serve` and a rack node's DHCP client, for the end-to-end serve tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from racker.rack.oem import Secret, write_credentials
from tests.support.netns import Link, link

EXAMPLE = Path(__file__).parents[2] / "fixtures" / "oem" / "example"
RACKER = str(Path(sys.executable).with_name("racker"))
NODE_MAC = "52:54:00:99:00:10"  # line 4 of the example nodes.csv: the first node's address
READY = "racker serve: ready"
PXE_BIOS = ["-x", "0x3c:" + b"PXEClient:Arch:00000:UNDI:002001".hex(), "-x", "93:0000"]

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] && echo "ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid"
exit 0
"""


def prepare_rack(tmp_path: Path) -> Path:
    """The example rack's OEM directory (credentials written 0600) and a udhcpc script."""
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    write_credentials(oem, "admin", Secret("pw"))
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    return tmp_path


@contextlib.contextmanager
def segment() -> Iterator[Link]:
    """The management node's PXE NIC (the example's PXE MAC) and one node of the rack."""
    with link(server_mac="52:54:00:99:02:01", client_mac=NODE_MAC) as made:
        yield made


class Serve:
    def __init__(
        self, net: Link, rack: Path, config: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.log = rack / "serve.log"
        # The log is appended to across restarts: wait for one more "ready" than it has now.
        ready_before = self.log.read_text().count(READY) if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.proc = net.server.popen(
                [
                    RACKER,
                    "-v",
                    "serve",
                    "--oem-dir",
                    str(rack / "oem"),
                    "--state-dir",
                    str(rack / "state"),
                    *(["--config", str(config)] if config is not None else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
        deadline = time.monotonic() + 30
        while self.log.read_text().count(READY) <= ready_before:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "racker serve did not get ready"
            time.sleep(0.1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(20)


def udhcpc(net: Link, rack: Path, *extra: str) -> dict[str, str]:
    result = net.client.run(
        "busybox",
        "udhcpc",
        "-i",
        net.cli_if,
        "-n",
        "-q",
        "-f",
        "-t",
        "4",
        "-T",
        "2",
        "-s",
        str(rack / "udhcpc.sh"),
        *extra,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("ip=")]
    assert lines, result.stdout + result.stderr
    return dict(part.split("=", 1) for part in lines[-1].split())
