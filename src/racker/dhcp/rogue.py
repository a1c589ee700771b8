"""Rogue DHCP servers: which replies on the PXE network are not racker's (layer 1: pure).

A stray home router or a switch's DHCP server on the rack network answers the nodes' PXE
DISCOVERs too, and a node that takes its offer never reaches racker: a classic cause of failed
PXE boots. ``racker serve`` watches for such replies (``dhcp/rogue_watch.py`` reads the frames;
this module decides); ``racker factory check --probe`` asks actively (``dhcp/probe.py``).

- ``BPF_SERVER_REPLIES``: the kernel hands over only IPv4/UDP from port 67 to port 68, i.e.
  replies of DHCP servers (and relay agents) to clients on the link.
- ``parse_reply``: (server IP, server MAC, message type, offered address) of such a frame,
  with racker's own codec; the server is named by option 54 (RFC 2131 §4.3.1: every OFFER,
  ACK and NAK carries it), else by the IP source address (a BOOTP server).
- ``RogueTracker``: given a sighting and ``now``, decides whether to warn (a server not warned
  about in the last minute) or only count; everything it keeps is bounded (``max_servers``
  servers, least recently seen evicted; ``max_warnings`` warnings a minute in all, so that a
  flood of forged server addresses writes a bounded log). ``FrameBudget`` bounds the frames
  parsed a second.

What a passive watcher cannot see: a reply unicast to a client's MAC through a switch reaches
only that client's port. Broadcast replies (the broadcast flag, which PXE ROMs set) and
replies flooded to every port are seen; the active probe sees the replies to its own MAC.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum

from racker.dhcp.codec import ZERO4, decode
from racker.dhcp.frames import parse_frame
from racker.dhcp.options import CLIENT_PORT, MAGIC_COOKIE, SERVER_PORT, MessageType, Opt
from racker.errors import PacketError

# Classic BPF for "ip and udp src port 67 and udp dst port 68" on an Ethernet socket, exactly
# what ``tcpdump -dd`` prints for that expression (a unit test keeps it so). Non-first
# fragments are dropped in the kernel.
BPF_SERVER_REPLIES: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x0000000C),  # ldh [12]            ethertype
    (0x15, 0, 10, 0x00000800),  # jeq #0x800          IPv4?
    (0x30, 0, 0, 0x00000017),  # ldb [23]            protocol
    (0x15, 0, 8, 0x00000011),  # jeq #17             UDP?
    (0x28, 0, 0, 0x00000014),  # ldh [20]            flags + fragment offset
    (0x45, 6, 0, 0x00001FFF),  # jset #0x1fff        not the first fragment: drop
    (0xB1, 0, 0, 0x0000000E),  # ldxb 4*([14]&0xf)   IP header length
    (0x48, 0, 0, 0x0000000E),  # ldh [x + 14]        UDP source port
    (0x15, 0, 3, 0x00000043),  # jeq #67
    (0x48, 0, 0, 0x00000010),  # ldh [x + 16]        UDP destination port
    (0x15, 0, 1, 0x00000044),  # jeq #68
    (0x06, 0, 0, 0x00040000),  # ret #262144         accept
    (0x06, 0, 0, 0x00000000),  # ret #0              drop
)

# What counts as a server answering: offers and acknowledgements (a NAK, too, tells a node
# "not this address" in racker's place). "BOOTP": a reply without option 53.
_ANSWERS = {
    MessageType.OFFER.value: "OFFER",
    MessageType.ACK.value: "ACK",
    MessageType.NAK.value: "NAK",
}
_BOOTREPLY = 2
_BOOTP_LEN = 236  # the fixed BOOTP header (RFC 951 adds a 64-byte vend field, often cut)


@dataclass(frozen=True, slots=True)
class ServerReply:
    """One server's reply to a client, as seen on the link."""

    server_ip: str
    server_mac: str
    message_type: str  # "OFFER", "ACK", "NAK" or "BOOTP"
    offered: str | None  # yiaddr, when not 0.0.0.0
    client_mac: str


def parse_reply(frame: bytes) -> ServerReply | None:
    """The server reply an Ethernet frame carries, or None (not IPv4/UDP 67→68, not a
    BOOTREPLY, not an answer). Malformed DHCP raises ``PacketError``."""
    parsed = parse_frame(frame)
    if parsed is None:
        return None
    src_mac, src_ip, sport, payload = parsed
    udp = 14 + (frame[14] & 0x0F) * 4  # parse_frame checked that the UDP header is there
    dport = (frame[udp + 2] << 8) | frame[udp + 3]
    if sport != SERVER_PORT or dport != CLIENT_PORT:
        return None
    if len(payload) >= _BOOTP_LEN and payload[0] == _BOOTREPLY and payload[236:240] != MAGIC_COOKIE:
        # RFC 951 BOOTP without RFC 1497 vendor extensions: no options to read.
        chaddr = payload[28 : 28 + min(payload[2], 16)]
        offered = _dotted(payload[16:20]) if payload[16:20] != ZERO4 else None
        return ServerReply(_dotted(src_ip), src_mac.hex(":"), "BOOTP", offered, chaddr.hex(":"))
    msg = decode(payload)
    if msg.op != _BOOTREPLY:
        return None
    kind = msg.options.get(Opt.MESSAGE_TYPE.value)
    if kind is None:
        message_type = "BOOTP"
    elif len(kind) == 1 and kind[0] in _ANSWERS:
        message_type = _ANSWERS[kind[0]]
    else:
        return None
    server_id = msg.options.get(Opt.SERVER_ID.value)
    if server_id is not None and len(server_id) != 4:
        raise PacketError(f"option 54 (server identifier) has {len(server_id)} bytes, not 4")
    offered = _dotted(msg.yiaddr) if msg.yiaddr != ZERO4 else None
    return ServerReply(
        _dotted(server_id or src_ip),
        src_mac.hex(":"),
        message_type,
        offered,
        msg.chaddr.hex(":"),
    )


def _dotted(address: bytes) -> str:
    return ".".join(map(str, address))


class Decision(Enum):
    WARN = "warn"  # log a warning and publish an event about this server now
    COUNT = "count"  # warned about within the interval: only counted
    HELD = "held"  # warn-worthy, but the warnings of this interval are spent: counted


@dataclass(slots=True)
class RogueServer:
    server_ip: str
    server_mac: str
    first_seen: float
    last_seen: float
    replies: int = 0
    last_warned: float | None = None
    message_type: str = ""


class RogueTracker:
    """Which rogue servers were seen, and whether a sighting is worth a warning now."""

    def __init__(
        self,
        max_servers: int = 64,
        warn_interval: float = 60.0,
        max_warnings: int = 20,
        window: float = 3600.0,
    ) -> None:
        self.max_servers = max_servers
        self.warn_interval = warn_interval
        self.max_warnings = max_warnings  # per warn_interval, all servers together
        self.window = window  # ``active`` counts the servers seen within it
        self.replies = 0  # every rogue reply observed
        self.evicted = 0  # servers forgotten to stay within max_servers
        self.held = 0  # warnings not given because the interval's were spent
        self._servers: OrderedDict[tuple[str, str], RogueServer] = OrderedDict()
        self._period_start: float | None = None
        self._warnings = 0

    def observe(self, server_ip: str, server_mac: str, message_type: str, now: float) -> Decision:
        self.replies += 1
        key = (server_ip, server_mac)
        server = self._servers.get(key)
        if server is None:
            if len(self._servers) >= self.max_servers:
                self._servers.popitem(last=False)
                self.evicted += 1
            server = self._servers[key] = RogueServer(server_ip, server_mac, now, now)
        else:
            self._servers.move_to_end(key)
        server.last_seen = now
        server.replies += 1
        server.message_type = message_type
        if server.last_warned is not None and now - server.last_warned < self.warn_interval:
            return Decision.COUNT
        if self._period_start is None or now - self._period_start >= self.warn_interval:
            self._period_start, self._warnings = now, 0
        if self._warnings >= self.max_warnings:
            self.held += 1
            return Decision.HELD
        self._warnings += 1
        server.last_warned = now
        return Decision.WARN

    def active(self, now: float) -> list[RogueServer]:
        """The servers seen within ``window`` (at most ``max_servers``), newest last."""
        return [s for s in self._servers.values() if now - s.last_seen <= self.window]

    def get(self, server_ip: str, server_mac: str) -> RogueServer | None:
        return self._servers.get((server_ip, server_mac))


class FrameBudget:
    """At most ``per_second`` frames parsed a second; the rest are only counted."""

    def __init__(self, per_second: int = 200) -> None:
        self.per_second = per_second
        self.skipped = 0
        self._second = -1
        self._used = 0

    def allow(self, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._second, self._used = second, 0
        if self._used < self.per_second:
            self._used += 1
            return True
        self.skipped += 1
        return False
