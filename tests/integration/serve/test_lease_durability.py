"""No ACKed lease is lost: racker commits a lease before it sends the ACK (issue 22).

A real `racker serve` in a namespace, busybox udhcpc as pool clients (MACs outside nodes.csv,
``dhcp.unknown_clients: pool``). The client's own bound hook SIGKILLs racker the moment it
holds its ACK, so no write-behind timer and no shutdown gets a chance to save the lease.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.dhcp import BOOTP, DHCP

from racker.app.stack import COMMIT_DELAY_ENV
from tests.support.netns import Link, entered, link
from tests.support.serving import Serve, prepare_rack, udhcpc

pytestmark = [pytest.mark.root, pytest.mark.slow]

FIRST, SECOND = "52:54:00:77:00:01", "52:54:00:77:00:02"  # neither is in nodes.csv

KILLING_SCRIPT = """#!/bin/sh
if [ "$1" = bound ]; then
    kill -9 "$(cat {pidfile})"
    echo "ip=$ip serverid=$serverid"
fi
exit 0
"""


@pytest.fixture
def rack(tmp_path: Path) -> Path:
    made = prepare_rack(tmp_path)
    (made / "racker.yaml").write_text("dhcp:\n  unknown_clients: pool\n")
    return made


@pytest.fixture
def net() -> Iterator[Link]:
    with link(server_mac="52:54:00:99:02:01", client_mac=FIRST) as made:
        yield made


def set_client_mac(net: Link, mac: str) -> None:
    net.client.run("ip", "link", "set", "dev", net.cli_if, "down")
    net.client.run("ip", "link", "set", "dev", net.cli_if, "address", mac)
    net.client.run("ip", "link", "set", "dev", net.cli_if, "up")


def test_a_lease_acked_just_before_a_sigkill_is_not_given_to_another_client(
    net: Link, rack: Path
) -> None:
    serve = Serve(net, rack, config=rack / "racker.yaml")
    pidfile = rack / "racker.pid"
    pidfile.write_text(str(serve.proc.pid))
    # `ip netns exec` execs racker in place: the pid is racker's own.
    assert "racker" in Path(f"/proc/{serve.proc.pid}/cmdline").read_text()
    killer = rack / "kill-on-bound.sh"
    killer.write_text(KILLING_SCRIPT.format(pidfile=pidfile))
    killer.chmod(0o755)
    try:
        first = udhcpc(net, rack, "-s", str(killer))  # the later -s wins
        assert serve.proc.wait(10) == -signal.SIGKILL  # killed by the hook, not stopped
    finally:
        if serve.proc.poll() is None:
            serve.proc.kill()
            serve.proc.wait()
    set_client_mac(net, SECOND)
    serve = Serve(net, rack, config=rack / "racker.yaml")
    try:
        second = udhcpc(net, rack)
    finally:
        assert serve.stop() == 0
    assert first["ip"] != second["ip"], (first, second, serve.log.read_text()[-3000:])


RELAY = "10.99.0.60"  # a relay agent's address on racker's own subnet: served from the pool


class Relay:
    """DHCP messages sent as a relay agent would (UDP from port 67, giaddr set), so that each
    reply's arrival can be timed and several clients can be in flight at once."""

    def __init__(self, net: Link) -> None:
        net.client.run("ip", "addr", "add", f"{RELAY}/24", "dev", net.cli_if)
        with entered(net.client.name):
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((RELAY, 67))
        self.server = (net.server_ip, 67)
        self.closing = threading.Event()
        self.receiver: threading.Thread | None = None

    def send(self, kind: str, mac: str, xid: int, *options: tuple[str, str]) -> float:
        chaddr = bytes.fromhex(mac.replace(":", "")) + bytes(10)
        message = BOOTP(op=1, xid=xid, hops=1, giaddr=RELAY, chaddr=chaddr) / DHCP(
            options=[("message-type", kind), *options, "end"]
        )
        sent = time.monotonic()
        self.sock.sendto(bytes(message), self.server)
        return sent

    def listen(self) -> dict[int, tuple[float, bytes]]:
        """From now on, every reply by xid: when it arrived (monotonic), and its yiaddr; filled
        by a thread, so arrivals are timed while the test does other things."""
        got: dict[int, tuple[float, bytes]] = {}

        def receive() -> None:
            while not self.closing.is_set():
                try:
                    data = self.sock.recv(2048)
                except TimeoutError:
                    continue
                got[int.from_bytes(data[4:8], "big")] = (time.monotonic(), data[16:20])

        self.sock.settimeout(0.1)
        self.receiver = threading.Thread(target=receive, daemon=True)
        self.receiver.start()
        return got

    def close(self) -> None:
        self.closing.set()
        if self.receiver is not None:
            self.receiver.join()
        self.sock.close()


def wait_for(replies: dict[int, tuple[float, bytes]], xid: int, seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while xid not in replies and time.monotonic() < deadline:
        time.sleep(0.01)


def curl_seconds(net: Link, url: str) -> float:
    """curl's own time for a whole transfer (the process start in the namespace aside)."""
    out = net.client.run(
        "curl", "-sS", "-f", "-o", "/dev/null", "-w", "%{time_total}", url, timeout=10
    ).stdout
    return float(out)


def test_slow_commits_delay_only_the_acks_that_wait_for_them(net: Link, rack: Path) -> None:
    """Every job of the store's writer takes 500 ms more (RACKER_TEST_COMMIT_DELAY, read by
    the composition root), as on a stalled disk. While a client's ACK waits for its commit,
    another client's OFFER, a TFTP transfer and an HTTP request are each answered in well
    under that time: nothing waits for the disk but the ACKs."""
    serve = Serve(net, rack, config=rack / "racker.yaml", env={COMMIT_DELAY_ENV: "0.5"})
    relay = Relay(net)
    try:
        waiting, other = "52:54:00:77:00:11", "52:54:00:77:00:12"
        replies = relay.listen()
        relay.send("discover", waiting, 1)
        wait_for(replies, 1)
        offered = replies[1][1]
        asked = relay.send(
            "request",
            waiting,
            2,
            ("server_id", net.server_ip),
            ("requested_addr", socket.inet_ntoa(offered)),
        )
        # While that REQUEST's commit is under way:
        discovered = relay.send("discover", other, 3)
        tftp = curl_seconds(net, f"tftp://{net.server_ip}/undionly.kpxe")
        http = curl_seconds(net, f"http://{net.server_ip}:8080/metrics")
        measured = time.monotonic()
        wait_for(replies, 2)
        wait_for(replies, 3)
    finally:
        relay.close()
        assert serve.stop() == 0
    assert 2 in replies and 3 in replies, replies
    ack_after = replies[2][0] - asked
    offer_after = replies[3][0] - discovered
    print(f"ACK {ack_after:.3f} s, OFFER {offer_after:.3f} s, TFTP {tftp:.3f} s, HTTP {http:.3f} s")
    assert replies[2][1] == offered
    # The measurements overlapped the commit: the ACK came after all of them.
    assert replies[2][0] > measured, (ack_after, offer_after, tftp, http)
    assert ack_after >= 0.5, f"ACK after {ack_after:.3f} s: sent before its 0.5 s commit"
    assert offer_after < 0.3, f"another client's OFFER took {offer_after:.3f} s"
    assert tftp < 0.3, f"TFTP took {tftp:.3f} s"
    assert http < 0.3, f"HTTP took {http:.3f} s"
