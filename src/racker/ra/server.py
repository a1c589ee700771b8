"""Answers IPv6 router solicitations on the PXE interface (layer 3: asyncio, raw ICMPv6 socket).

Why: iPXE configures IPv6 on every link it opens and waits ~13 s for a router advertisement
before it gives up and goes on with IPv4 (RIG.md). Answering its router solicitation at once
removes that stall from every network boot. The advertisement says as little as possible
(RFC 4861 section 4.2): router lifetime 0 (not a default router), no M/O flags (no DHCPv6), no
prefix; so no host configures anything from it, and iPXE's IPv6 set-up simply completes.

Only solicitations are answered (RFC 4861 section 6.2.6: unicast to the soliciting host when
its source is a unicast address, else to all-nodes); no unsolicited advertisements are sent.
Packets are checked as section 6.1.1 asks: hop limit 255 (when the kernel reports it), code 0,
ICMP length >= 8. Anything else is dropped and logged at debug level.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct

log = logging.getLogger("racker.ra")

ICMPV6_RS = 133
ICMPV6_RA = 134
OPT_SOURCE_LLADDR = 1
ALL_NODES = "ff02::1"
ALL_ROUTERS = "ff02::2"
IPV6_RECVHOPLIMIT = getattr(socket, "IPV6_RECVHOPLIMIT", 51)
IPV6_HOPLIMIT = getattr(socket, "IPV6_HOPLIMIT", 52)


def is_router_solicitation(data: bytes, hop_limit: int | None) -> bool:
    """RFC 4861 section 6.1.1 validity checks a host-independent router can make."""
    if hop_limit is not None and hop_limit != 255:
        return False
    return len(data) >= 8 and data[0] == ICMPV6_RS and data[1] == 0


def router_advertisement(mac: str | None) -> bytes:
    """An RA that configures nothing: lifetime 0, no flags, no prefixes (section 4.2).

    The checksum field is left 0: the kernel fills it in for ICMPv6 raw sockets (RFC 3542
    section 3.1).
    """
    body = struct.pack("!BBHBBHII", ICMPV6_RA, 0, 0, 0, 0, 0, 0, 0)
    if mac:
        # Source link-layer address option (section 4.6.1): type, length in 8-octet units.
        body += struct.pack("!BB", OPT_SOURCE_LLADDR, 1) + bytes.fromhex(mac.replace(":", ""))
    return body


def reply_address(source: str) -> str:
    """Unicast to the solicitor when it has an address; all-nodes when it sent from ::."""
    address = ipaddress.IPv6Address(source.split("%", 1)[0])
    return ALL_NODES if address.is_unspecified else str(address)


class RouterAdvertiser:
    """Joins all-routers on ``interface`` and answers each router solicitation with one RA."""

    def __init__(self, interface: str, mac: str | None) -> None:
        self.interface = interface
        self.mac = mac
        self.answered = 0
        self._sock: socket.socket | None = None
        self._advert = router_advertisement(mac)

    async def start(self) -> None:
        """Open the socket; without IPv6 on the interface, warn and answer nothing.

        Router advertisements only save iPXE its wait, so a host with IPv6 disabled must not
        keep the boot stack from starting.
        """
        try:
            self._open()
        except OSError as exc:
            log.warning(
                "not answering IPv6 router solicitations on %s (%s): iPXE will wait ~13 s for "
                "one on every network boot; set dhcp.router_advertisements: false to silence this",
                self.interface,
                exc.strerror or exc,
            )
            return
        assert self._sock is not None
        asyncio.get_running_loop().add_reader(self._sock.fileno(), self._readable)
        log.info("answering IPv6 router solicitations on %s", self.interface)

    def _open(self) -> None:
        index = socket.if_nametoindex(self.interface)
        sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.interface.encode())
            group = socket.inet_pton(socket.AF_INET6, ALL_ROUTERS) + struct.pack("@I", index)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, group)
            # Section 6.1.2/6.2.6: RAs go out with hop limit 255, and solicitations must have
            # arrived with 255 (so they came from this link).
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVHOPLIMIT, 1)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._index = index

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data, ancdata, _flags, peer = self._sock.recvmsg(1500, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("receiving on %s failed: %s", self.interface, exc)
                return
            hop_limit = None
            for level, kind, value in ancdata:
                if level == socket.IPPROTO_IPV6 and kind == IPV6_HOPLIMIT and len(value) >= 4:
                    hop_limit = struct.unpack("@i", value[:4])[0]
            if not is_router_solicitation(data, hop_limit):
                if data[:1] == bytes([ICMPV6_RS]):
                    log.debug("dropped a malformed router solicitation from %s", peer[0])
                continue
            self._answer(str(peer[0]))

    def _answer(self, source: str) -> None:
        assert self._sock is not None
        target = reply_address(source)
        try:
            self._sock.sendto(self._advert, (target, 0, 0, self._index))
        except OSError as exc:
            log.warning("sending a router advertisement to %s failed: %s", target, exc)
            return
        self.answered += 1
        log.debug("router advertisement to %s on %s", target, self.interface)

    async def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
