"""How a reply is laid out and addressed (layer 1: pure).

Option order: 53 first, then the options in the order of the client's parameter request list
(55), then the rest, then the echoes 61 (RFC 6842), 97 (PXE) and 82 last (RFC 3046 §2.2).
The result is trimmed to the client's maximum message size (57, RFC 2132 §9.10), dropping
options from the end but never 53, 54, 51, 1 or 82.
"""

from __future__ import annotations

from dataclasses import dataclass

from racker.dhcp.codec import ZERO4, Message, encoded_size, ntoa
from racker.dhcp.options import (
    CLIENT_PORT,
    FLAG_BROADCAST,
    IP_UDP_OVERHEAD,
    MIN_MAX_MESSAGE_SIZE,
    SERVER_PORT,
    MessageType,
    Opt,
)

# Plain ints on the hot path (an IntEnum member lookup costs ~80 ns).
_CLIENT_ID = Opt.CLIENT_ID.value
_CLIENT_UUID = Opt.CLIENT_UUID.value
_LEASE_TIME = Opt.LEASE_TIME.value
_MAX_MESSAGE_SIZE = Opt.MAX_MESSAGE_SIZE.value
_MESSAGE_TYPE = Opt.MESSAGE_TYPE.value
_PARAMETER_LIST = Opt.PARAMETER_LIST.value
_RELAY_AGENT = Opt.RELAY_AGENT.value
_SERVER_ID = Opt.SERVER_ID.value
_SUBNET_MASK = Opt.SUBNET_MASK.value
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
