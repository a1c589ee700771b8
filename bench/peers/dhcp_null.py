"""A null DHCP responder: the least work that lets perfdhcp complete a relayed DORA exchange.

    python bench/peers/dhcp_null.py SERVER_IP [minimal|racker]

A measuring instrument for bench/dhcp.py, not a DHCP server: it keeps no leases, checks
nothing, and answers each relayed DISCOVER with an OFFER and each REQUEST with an ACK (to the
relay's port 67) built from a template, the address derived from the client's MAC. It costs
a fraction of what racker or dnsmasq cost per exchange, so the rate perfdhcp reaches against
it is the load generator's own ceiling on this machine: no server can be measured above it.
Its replies carry options 53, 54, 51 and 1 ("minimal", the default) or the seven racker sends
perfdhcp, in racker's order ("racker": 53, 1, 28, 54, 51, 58, 59): perfdhcp parses every reply.
"""

from __future__ import annotations

import socket
import sys

OFFER, REQUEST = 1, 3
REPLY_TYPE = {1: 2, 3: 5}  # DISCOVER -> OFFER, REQUEST -> ACK
COOKIE = b"\x63\x82\x53\x63"


def message_type(data: bytes) -> int:
    """Option 53 of a BOOTP request, or 0 (walks the options; no overload, no checks)."""
    i = 240
    while i + 1 < len(data):
        code = data[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            break
        if code == 53:
            return data[i + 2] if i + 2 < len(data) else 0
        i += 2 + data[i + 1]
    return 0


def main() -> None:
    server = socket.inet_aton(sys.argv[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((sys.argv[1], 67))
    if sys.argv[2:] == ["racker"]:
        # netmask /20, broadcast, server id, lease 3600 s, T1, T2, end; padded to 300 bytes.
        tail = (
            b"\x01\x04\xff\xff\xf0\x00\x1c\x04\x0a\x62\x0f\xff\x36\x04" + server
            + b"\x33\x04\x00\x00\x0e\x10\x3a\x04\x00\x00\x07\x08\x3b\x04\x00\x00\x0c\x4e\xff"
        )  # fmt: skip
    else:
        # server id, lease time 3600 s, netmask /20, end; padded past 300 bytes in all.
        tail = b"\x36\x04" + server + b"\x33\x04\x00\x00\x0e\x10\x01\x04\xff\xff\xf0\x00\xff"
    options = {t: COOKIE + bytes((53, 1, r)) + tail for t, r in REPLY_TYPE.items()}
    options = {t: o + bytes(max(0, 300 - 236 - len(o))) for t, o in options.items()}
    recv, send = sock.recvfrom, sock.sendto
    while True:
        data, relay = recv(2048)
        if len(data) < 241 or data[0] != 1 or data[236:240] != COOKIE:
            continue
        reply = options.get(message_type(data))
        if reply is None:
            continue
        # op 2; htype..ciaddr copied; yiaddr 10.98.(1-8).x from the MAC; siaddr; giaddr..file.
        yiaddr = bytes((10, 98, 1 + data[33] % 8, data[34]))
        send(b"\x02" + data[1:16] + yiaddr + server + data[24:236] + reply, relay)


if __name__ == "__main__":
    main()
