"""What the DHCP core remembers so as not to work the same thing out twice (layer 1: pure).

Nothing here decides: the decisions are the core's (``core.py``), and what is kept here only
saves it work. A property test holds a remembering core to one that remembers nothing. Every
table is bounded, and forgotten all at once when full, so a flood of made-up input cannot grow
it.

- ``RequestMemo``: a client repeats its requests byte for byte but for xid and secs
  (retransmissions, renewals, each boot of a node, each exchange of a load generator), so what
  a request's bytes say (``Remembered``: the decoded message, client class, segment, boot file)
  is worked out once per distinct request, and so is each encoded reply to it
  (``EncodedReply``): a repeated request costs the lease decisions and an xid patch. The lease
  table and the node's boot policy are consulted every time.
- ``RelaySegments``: the segment of each relay agent (giaddr); a rack has a handful.
- ``LeaseTimes``: the encoded options 51, 58 and 59 of each lease time.
- ``ntoa``: the dotted text of addresses, for events and replies.
- ``LeaseCaching``: a young lease acknowledged as it stands (``dhcp.cache_threshold``), so
  that nothing changes and nothing is written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from racker.dhcp.leases import BOUND

if TYPE_CHECKING:
    from racker.dhcp.boot import BootChoice, ClientInfo
    from racker.dhcp.codec import Message
    from racker.dhcp.core import ReceiveInfo
    from racker.dhcp.events import EventFields, Exchange
    from racker.dhcp.leases import LeaseTable
    from racker.dhcp.reply import Destination
    from racker.dhcp.settings import Segment

# Distinct requests remembered: a rack's machines and a load generator's 1000 clients send a
# few shapes each; a request and its replies take ~2 KB.
MEMO_SIZE = 8192
TOLD_IN = 60  # seconds: the time left of a cached lease is told in whole minutes
REPLIES_PER_REQUEST = 8  # a pool client moving through many addresses gets a new one each

_U32 = struct.Struct("!I")

# A reply's decision: (message type, yiaddr, lease time or None, with the boot file?)
ReplyKey = tuple[int, int, int | None, bool]


@dataclass(frozen=True, slots=True)
class EncodedReply:
    """A reply to a ``Remembered`` request for one decision; only the xid is patched in."""

    template: bytes
    destination: Destination
    event: EventFields  # its event's, but for the time and xid


@dataclass(slots=True)
class Remembered:
    """What one request's bytes say, worked out once.

    Everything here is a pure function of the bytes (xid and secs aside), the receive info and
    the core's fixed settings; lease state and the node's boot policy are not in it.
    """

    msg: Message  # as first seen: its xid is not this message's (the core patches it in)
    mtype: int
    mac: str
    client: ClientInfo
    exchange: Exchange  # what its events and its replies' say of it
    event: EventFields  # its event's, but for the time, xid and reason
    segment: Segment | None
    reason: str  # why there is no segment
    boot: BootChoice | None  # before the node's policy
    hostname: str | None
    replies: dict[ReplyKey, EncodedReply]

    def remember(self, key: ReplyKey, reply: EncodedReply) -> EncodedReply:
        if len(self.replies) >= REPLIES_PER_REQUEST:
            self.replies.clear()
        self.replies[key] = reply
        return reply


class RequestMemo:
    """Requests already worked out, by their bytes without xid and secs; one table per way of
    arrival (the same bytes from a relay's port and from a client's mean different things)."""

    def __init__(
        self, work_out: Callable[[bytes, ReceiveInfo], Remembered], size: int = MEMO_SIZE
    ) -> None:
        self._work_out = work_out
        self._size = size
        self._tables: dict[bool, dict[bytes, Remembered]] = {True: {}, False: {}}

    def recall(self, data: bytes, info: ReceiveInfo) -> Remembered:
        """What ``data`` says: remembered, or worked out now (which may raise ``PacketError``:
        then nothing is remembered)."""
        table = self._tables[info.relayed]
        key = data[:4] + data[10:]  # without xid (4-7) and secs (8-9): neither changes a reply
        remembered = table.get(key)
        if remembered is None:
            remembered = self._work_out(data, info)
            if self._size:
                if len(table) >= self._size:
                    table.clear()
                table[key] = remembered
        return remembered

    def __len__(self) -> int:
        return sum(len(table) for table in self._tables.values())


class RelaySegments:
    """The segment serving each relay agent's giaddr (or why none does), found once each."""

    LIMIT = 4096

    def __init__(self, find: Callable[[bytes], tuple[Segment | None, str]]) -> None:
        self._find = find
        self._found: dict[bytes, tuple[Segment | None, str]] = {}

    def get(self, giaddr: bytes) -> tuple[Segment | None, str]:
        found = self._found.get(giaddr)
        if found is None:
            if len(self._found) >= self.LIMIT:
                self._found.clear()
            found = self._found[giaddr] = self._find(giaddr)
        return found


class LeaseTimes:
    """Options 51, 58 and 59 encoded, per lease time: T1 is half the lease and T2 seven
    eighths (RFC 2131 §4.4.5). Cached leases are told their time left, one value a second."""

    LIMIT = 4096

    def __init__(self) -> None:
        self._encoded: dict[int, tuple[bytes, bytes, bytes]] = {}

    def get(self, lease_time: int) -> tuple[bytes, bytes, bytes]:
        times = self._encoded.get(lease_time)
        if times is None:
            if len(self._encoded) >= self.LIMIT:
                self._encoded.clear()
            times = self._encoded[lease_time] = (
                _U32.pack(lease_time),
                _U32.pack(lease_time // 2),
                _U32.pack(lease_time * 7 // 8),
            )
        return times


_DOTTED: dict[bytes, str] = {}  # a rack's few thousand addresses, formatted once each


def ntoa(raw: bytes) -> str:
    """Dotted text of a 4-byte address (``socket.inet_ntoa`` without the socket module).

    Every message's events carry one or two addresses as text, and a dict lookup is cheaper
    than formatting. The table is cleared when full, so a flood of made-up addresses cannot
    grow it without bound.
    """
    text = _DOTTED.get(raw)
    if text is None:
        if len(_DOTTED) >= 65536:
            _DOTTED.clear()
        text = _DOTTED[raw] = f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    return text


class LeaseCaching:
    """Lease caching, as ISC dhcpd's ``dhcp-cache-threshold`` and Kea's ``cache-threshold``.

    A client that asks again soon after its lease was written (a node booting through firmware,
    iPXE and its OS does a DORA in each; a load generator does nothing else) is told the time
    left, not a new full lease, so nothing changes and nothing is written. The stored expiry
    stays what the client was told.
    """

    def __init__(self, leases: LeaseTable, threshold: float) -> None:
        self._leases = leases
        self._threshold = threshold

    def time_left(
        self,
        mac: str,
        address: int,
        lease_time: int,
        now: float,
        client_id: bytes | None,
        hostname: str | None,
    ) -> int:
        """Seconds left of the client's bound lease if it is young enough to be acknowledged
        as it stands, else 0: the lease is renewed and written again."""
        threshold = self._threshold
        if not threshold:
            return 0
        entry = self._leases.for_mac(mac)
        if entry is None or entry.state is not BOUND or entry.address != address:
            return 0
        if (client_id is not None and client_id != entry.client_id) or (
            hostname is not None and hostname != entry.hostname
        ):
            return 0  # something to write
        remaining = int(entry.expires - now)
        if not 1 <= remaining <= lease_time:  # (more left: the setting was shortened since)
            return 0
        if lease_time - remaining >= threshold * lease_time:
            return 0
        # Told in whole minutes, rounded down (a client never believes in more than it has):
        # the reply to a repeated request then stays the same bytes for a minute, remembered,
        # instead of being built and encoded again every second.
        return remaining - remaining % TOLD_IN if remaining >= TOLD_IN else remaining
