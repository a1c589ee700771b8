"""`racker serve` as a systemd Type=notify service (issue 9): READY=1 on $NOTIFY_SOCKET once
DHCP/TFTP/HTTP are bound, and SIGHUP re-reading nodes.csv without dropping leases; a reload
that finds invalid files keeps the running configuration."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Link
from tests.support.serving import NODE_MAC, RACKER, prepare_rack, segment

NEW_MAC = "52:54:00:99:00:60"

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def net() -> Iterator[Link]:
    with segment() as made:
        yield made


def udhcpc(net: Link, script: Path, *extra: str) -> str | None:
    result = net.client.run(
        "busybox", "udhcpc", "-i", net.cli_if, "-n", "-q", "-f", "-t", "3", "-T", "1",
        "-s", str(script), *extra, check=False,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith("ip=")]
    return lines[-1].split()[0].removeprefix("ip=") if lines else None


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], count: int = 1) -> None:
    deadline = time.monotonic() + 30
    while log.read_text().count(text) < count:
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"no {text!r} in the log:\n{log.read_text()}"
        time.sleep(0.1)


def test_ready_notification_and_reload_on_sighup(net: Link, tmp_path: Path) -> None:
    oem = prepare_rack(tmp_path) / "oem"
    script = tmp_path / "udhcpc.sh"
    log = tmp_path / "serve.log"
    notify_path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify, log.open("ab") as out:
        notify.bind(notify_path)
        notify.settimeout(60)
        proc = net.server.popen(
            [RACKER, "-v", "serve", "--oem-dir", str(oem), "--state-dir", str(tmp_path / "st")],
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=dict(os.environ, NOTIFY_SOCKET=notify_path),
        )
        try:
            assert notify.recv(100) == b"READY=1"
            # READY means bound: the HTTP server answers right away.
            net.client.run("ip", "addr", "add", "10.99.0.250/24", "dev", net.cli_if)
            boot = net.client.run("curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{http_code}",
                                  "--max-time", "10", "http://10.99.0.1:8080/boot.ipxe",
                                  check=False)  # fmt: skip
            net.client.run("ip", "addr", "flush", "dev", net.cli_if)
            first = udhcpc(net, script)
            assert first is not None and first.startswith("10.99.0."), log.read_text()

            # An unknown MAC gets nothing yet.
            net.client.run("ip", "link", "set", "dev", net.cli_if, "address", NEW_MAC)
            assert udhcpc(net, script) is None

            # A broken nodes.csv: the reload is refused, the old inventory keeps serving.
            csv = oem / "nodes.csv"
            good = csv.read_text()
            csv.write_text(good + "not-a-mac, 52:54:00:99:01:60, , red, broken\n")
            proc.send_signal(signal.SIGHUP)
            wait_for(log, "reload failed, keeping the running configuration", proc)
            assert "nodes.csv" in log.read_text().split("reload failed", 1)[1]

            # A valid one with a new server: it gets its reserved address after the reload.
            csv.write_text(good + f"{NEW_MAC}, 52:54:00:99:01:60, 52:54:00:99:02:60, red, new\n")
            proc.send_signal(signal.SIGHUP)
            wait_for(log, "reloaded:", proc)
            new = udhcpc(net, script)
            assert new is not None and new != first, log.read_text()

            # The first node's lease survived the reload: INIT-REBOOT gets the same address.
            net.client.run("ip", "link", "set", "dev", net.cli_if, "address", NODE_MAC)
            assert udhcpc(net, script, "-r", first) == first
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
        stopping = notify.recv(100)
    assert code == 0, log.read_text()
    assert boot.stdout == "200", boot.stderr
    assert stopping == b"STOPPING=1"
    assert "Traceback" not in log.read_text()
