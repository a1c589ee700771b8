"""A flood of malformed DHCP datagrams from many senders, on both of the server's sockets (the
packet socket for clients on the link, the UDP socket for relay agents): every one is dropped
and counted, and the log gets a bounded number of lines, with the first occurrence per sender
and kind, and the totals of what was left out. A client is served after the flood.

Before the budget, one global rate limit (10 lines per 10 s) told nothing of who sent what.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.dhcp.support import running, stop, udhcpc
from tests.support.netns import Link, link

pytestmark = [pytest.mark.root, pytest.mark.slow]

CLIENT_MAC = "52:54:00:aa:00:01"
SENDERS = [f"10.99.0.{n}" for n in range(150, 190)]  # 40 addresses
PER_PATH = 10_000  # datagrams on each socket
FLOOD = """
import socket, sys
sources, count, port = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])
socks = []
for address in sources:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((address, port))
    socks.append(s)
junk = b"\\x01\\x01\\x06\\x00" + bytes(30)  # a BOOTREQUEST cut off at 34 bytes
for i in range(count):
    socks[i % len(socks)].sendto(junk, ("10.99.0.1", 67))
"""


@pytest.fixture
def net() -> Iterator[Link]:
    with link(client_mac=CLIENT_MAC) as made:
        yield made


def test_a_malformed_flood_from_many_senders_writes_a_bounded_log(
    net: Link, tmp_path: Path
) -> None:
    for address in SENDERS:
        net.client.run("ip", "addr", "add", f"{address}/24", "dev", net.cli_if)
    with running(net, tmp_path, reservations={CLIENT_MAC: "10.99.0.64"}) as served:
        # From port 68: on the link (the packet socket); from port 67: as relay agents.
        for port in (68, 67):
            net.client.run(
                "python3", "-c", FLOOD, ",".join(SENDERS), str(PER_PATH), str(port), timeout=120
            )
        lease = udhcpc(net.client, net.cli_if, tmp_path)
        assert lease is not None and lease["ip"] == "10.99.0.64", served.stderr()
        closed = stop(served)
    dropped = int(re.search(r"dropped=(\d+)", closed).group(1))  # type: ignore[union-attr]
    log = served.stderr()
    lines = [line for line in log.splitlines() if line.startswith("WARNING")]
    firsts = [line for line in lines if "dropped a malformed packet" in line]
    totals = [int(m.group(1)) for m in re.finditer(r"(\d+) more lines \(malformed\)", log)]
    # Every drop is counted; the kernel may have dropped a few at a full buffer (not ours).
    assert 0.9 * 2 * PER_PATH <= dropped <= 2 * PER_PATH, closed
    assert len(lines) <= 300, f"{len(lines)} warning lines"  # 80 senders x 3 + totals
    assert len(firsts) + sum(totals) == dropped  # shown or counted, none unaccounted for
    for address in SENDERS:  # the first occurrence from each sender, on each path
        assert any(f"relay agent {address}:" in line for line in firsts), address
        assert any(f"({address}):" in line for line in firsts), address
