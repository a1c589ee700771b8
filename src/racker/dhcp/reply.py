"""What a reply says, how it is laid out and where it goes (layer 1: pure).

Content: option 54 and the segment's network options, the lease times (never in an ACK to an
INFORM, RFC 2131 §4.3.5) and, when the client is to boot from the network, the boot file in
option 67 and the ``file`` field. Option order: 53 first, then the options in the order of the
client's parameter request list (55), then the rest, then the echoes 61 (RFC 6842), 97 (PXE)
and 82 last (RFC 3046 §2.2). The result is trimmed to the client's maximum message size (57,
RFC 2132 §9.10), dropping options from the end but never 53, 54, 51, 1 or 82. Addressing per
RFC 2131 §4.1 (``destination``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from racker.dhcp.codec import ZERO4, Message, encoded_size
from racker.dhcp.memo import ntoa
from racker.dhcp.options import (
    BOOTREPLY,
    CLIENT_PORT,
    FILE_LEN,
    FLAG_BROADCAST,
    IP_UDP_OVERHEAD,
    MIN_MAX_MESSAGE_SIZE,
    SERVER_PORT,
    MessageType,
    Opt,
)

if TYPE_CHECKING:
    from racker.dhcp.boot import BootChoice
    from racker.dhcp.settings import Segment

# Plain ints on the hot path (an IntEnum member lookup is an attribute lookup and more).
_BOOTFILE = Opt.BOOTFILE.value
_BROADCAST = Opt.BROADCAST.value
_CLIENT_ID = Opt.CLIENT_ID.value
_CLIENT_UUID = Opt.CLIENT_UUID.value
_DNS = Opt.DNS.value
_LEASE_TIME = Opt.LEASE_TIME.value
_MAX_MESSAGE_SIZE = Opt.MAX_MESSAGE_SIZE.value
_MESSAGE = Opt.MESSAGE.value
_MESSAGE_TYPE = Opt.MESSAGE_TYPE.value
_PARAMETER_LIST = Opt.PARAMETER_LIST.value
_REBINDING_TIME = Opt.REBINDING_TIME.value
_RELAY_AGENT = Opt.RELAY_AGENT.value
_RENEWAL_TIME = Opt.RENEWAL_TIME.value
_ROUTER = Opt.ROUTER.value
_SERVER_ID = Opt.SERVER_ID.value
_SUBNET_MASK = Opt.SUBNET_MASK.value
_TFTP_SERVER = Opt.TFTP_SERVER.value
_VENDOR_CLASS = Opt.VENDOR_CLASS.value
_ACK = MessageType.ACK.value
_NAK = MessageType.NAK.value

_KEEP = frozenset({_MESSAGE_TYPE, _SERVER_ID, _LEASE_TIME, _SUBNET_MASK, 82})
_BROADCAST_MAC = b"\xff" * 6


@dataclass(frozen=True, slots=True)
class Destination:
    ip: str
    port: int
    mac: bytes | None  # Ethernet destination; None: route by IP (a relay agent)
    broadcast: bool = False


BROADCAST = Destination("255.255.255.255", CLIENT_PORT, _BROADCAST_MAC, broadcast=True)


@dataclass(frozen=True, slots=True)
class Server:
    """What every reply of this server says of it."""

    id: bytes  # our address: option 54, and siaddr when there is a boot file
    name: bytes  # our address as text: option 66 (the TFTP server)
    dns: bytes  # option 6, the name servers' addresses (empty: none)


def build_reply(
    msg: Message,
    mtype: int,
    yiaddr: bytes,
    times: tuple[bytes, bytes, bytes] | None,
    segment: Segment,
    boot: BootChoice | None,
    server: Server,
) -> Message:
    """The OFFER or ACK to ``msg`` giving ``yiaddr`` on ``segment``: ``times`` are options
    51, 58 and 59 (None: an ACK to an INFORM); ``boot`` the boot file, if it is to boot."""
    offer: dict[int, bytes] = {_SERVER_ID: server.id}
    if times is not None:
        offer[_LEASE_TIME], offer[_RENEWAL_TIME], offer[_REBINDING_TIME] = times
    offer[_SUBNET_MASK] = segment.mask_bytes
    if segment.router is not None:
        offer[_ROUTER] = segment.router
    if server.dns:
        offer[_DNS] = server.dns
    offer[_BROADCAST] = segment.broadcast_bytes
    bootfile = b""
    if boot is not None:
        bootfile = boot.file.encode()
        if boot.tftp:
            offer[_TFTP_SERVER] = server.name
        offer[_BOOTFILE] = bootfile + b"\0"  # NUL: old PXE ROMs, as dnsmasq does
        if boot.http_client:  # UEFI spec §24.7: HTTP boot takes only offers that echo it
            offer[_VENDOR_CLASS] = b"HTTPClient"
    # Positional, in field order: keyword arguments cost more, and this runs for every reply
    # not remembered yet.
    return Message(
        BOOTREPLY,  # op
        msg.xid,
        msg.chaddr,
        1,  # htype: Ethernet, as the request's
        0,  # hops
        0,  # secs
        msg.flags,
        msg.ciaddr if mtype == _ACK else ZERO4,  # ciaddr
        yiaddr,
        server.id if boot is not None else ZERO4,  # siaddr
        msg.giaddr,
        b"",  # sname
        bootfile if len(bootfile) < FILE_LEN else b"",  # file
        ordered_options(msg, mtype, offer),
    )


def build_nak(msg: Message, xid: int, why: str, server_id: bytes) -> Message:
    """A NAK to ``msg``, saying ``why`` (option 56)."""
    offer = {_SERVER_ID: server_id, _MESSAGE: why.encode()}
    relayed = msg.giaddr != ZERO4
    return Message(
        op=BOOTREPLY,
        xid=xid,
        chaddr=msg.chaddr,
        # RFC 2131 §4.3.2: a relay must broadcast the NAK on the client's segment.
        flags=msg.flags | FLAG_BROADCAST if relayed else msg.flags,
        giaddr=msg.giaddr,
        options=ordered_options(msg, _NAK, offer),
    )


def ordered_options(msg: Message, mtype: int, offer: dict[int, bytes]) -> dict[int, bytes]:
    """The reply's options in wire order (``offer`` is consumed)."""
    options = {_MESSAGE_TYPE: bytes((mtype,))}
    wanted = msg.options.get(_PARAMETER_LIST)
    if wanted:
        for code in wanted:
            value = offer.pop(code, None)
            if value is not None:
                options[code] = value
    options.update(offer)
    client_options = msg.options
    for code in (_CLIENT_ID, _CLIENT_UUID, _RELAY_AGENT):
        value = client_options.get(code)
        if value is not None:
            options[code] = value
    limit = MIN_MAX_MESSAGE_SIZE
    raw = client_options.get(_MAX_MESSAGE_SIZE)
    if raw is not None and len(raw) == 2:
        limit = max(limit, (raw[0] << 8) | raw[1])
    limit -= IP_UDP_OVERHEAD  # RFC 2132 §9.10 counts the IP datagram
    # Fast bound first (exact unless a value needs RFC 3396 splitting), exact size if close.
    if 241 + 2 * len(options) + sum(map(len, options.values())) > limit and (
        encoded_size(options) > limit
    ):
        for code in reversed(list(options)):
            if code not in _KEEP:
                del options[code]
                if encoded_size(options) <= limit:
                    break
    return options


_RELAY_DESTINATIONS: dict[bytes, Destination] = {}


def destination(msg: Message, reply: Message) -> Destination:
    """Where a reply goes, RFC 2131 §4.1 (the paragraph after table 3)."""
    if msg.giaddr != ZERO4:
        # A rack has a handful of relay agents: one Destination each, not one per reply.
        relay = _RELAY_DESTINATIONS.get(msg.giaddr)
        if relay is None:
            if len(_RELAY_DESTINATIONS) >= 4096:
                _RELAY_DESTINATIONS.clear()  # bounded under a flood of made-up giaddrs
            relay = _RELAY_DESTINATIONS[msg.giaddr] = Destination(
                ntoa(msg.giaddr), SERVER_PORT, None
            )
        return relay
    if reply.options[_MESSAGE_TYPE][0] == _NAK:
        return BROADCAST
    if msg.ciaddr != ZERO4:
        return Destination(ntoa(msg.ciaddr), CLIENT_PORT, msg.chaddr)
    if msg.flags & FLAG_BROADCAST:
        return BROADCAST
    return Destination(ntoa(reply.yiaddr), CLIENT_PORT, msg.chaddr)
