"""The DHCP server's decisions, sans-I/O (layer 1: no sockets, no clock, no asyncio).

Theory of operation. ``DhcpCore.handle(data, info, now)`` takes one DHCP message as received
(the UDP payload) and returns an ``Outcome``: the reply bytes (or None), where to send them,
and the events to publish (one for the message in, one for the reply out, and a
``DiscoveryEvent`` the first time an unknown MAC shows up). A malformed message raises
``PacketError`` and changes nothing.

- Serving segment: a relayed message (giaddr set) is served from the ``dhcp.relays`` segment
  whose subnet contains giaddr, or from the local subnet if giaddr lies in it (RFC 2131 §4.3.1);
  otherwise from the local subnet of the PXE interface.
- Address: a reserved MAC (node primary NIC or BMC, from the allocation table) always gets its
  reserved address; any other MAC is ignored (``dhcp.unknown_clients: ignore``) or leased one
  from the segment's pool (``pool``) with ``pool_lease_time``.
- REQUEST (RFC 2131 §4.3.2): SELECTING (server id + requested address), INIT-REBOOT (requested
  address only), RENEWING/REBINDING (ciaddr only) all reduce to "is this the address this
  client should have?": yes → ACK, no → NAK, client unknown to us → silence.
- Replies: 53 first, then the options in the order of the client's parameter list (55), then
  the rest, then the echoes 61, 97 (RFC 6842, PXE) and 82 last (RFC 3046 §2.2); trimmed to the
  client's maximum message size (57). Addressing per RFC 2131 §4.1 (``reply.destination``).
- Remembering: what a request's bytes say and the encoded replies to it are kept per distinct
  request (xid and secs aside), since clients repeat their requests; only the lease decisions
  and the node's boot policy run again. A test holds it to a core that remembers nothing.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from racker.dhcp.boot import BootChoice, BootSettings, ClientInfo, choose_boot, classify
from racker.dhcp.codec import ZERO4, Message, decode, encode, ntoa
from racker.dhcp.events import Exchange
from racker.dhcp.leases import BOUND, DECLINED, OFFERED, LeaseTable, PersistedLease
from racker.dhcp.options import (
    BOOTREPLY,
    BOOTREQUEST,
    FILE_LEN,
    FLAG_BROADCAST,
    MessageType,
    Opt,
)
from racker.dhcp.reply import Destination, destination, ordered_options
from racker.errors import PacketError
from racker.events import DiscoveryEvent, Event, Keeps
from racker.model import AddressRange, BootAction, BootPolicy, always_pxe

# Plain ints on the hot path (an IntEnum member lookup costs ~80 ns).
_BOOTFILE = Opt.BOOTFILE.value
_BROADCAST = Opt.BROADCAST.value
_CLIENT_ID = Opt.CLIENT_ID.value
_DNS = Opt.DNS.value
_HOSTNAME = Opt.HOSTNAME.value
_LEASE_TIME = Opt.LEASE_TIME.value
_MESSAGE = Opt.MESSAGE.value
_MESSAGE_TYPE = Opt.MESSAGE_TYPE.value
_REBINDING_TIME = Opt.REBINDING_TIME.value
_RENEWAL_TIME = Opt.RENEWAL_TIME.value
_REQUESTED_ADDRESS = Opt.REQUESTED_ADDRESS.value
_ROUTER = Opt.ROUTER.value
_SERVER_ID = Opt.SERVER_ID.value
_SUBNET_MASK = Opt.SUBNET_MASK.value
_TFTP_SERVER = Opt.TFTP_SERVER.value
_VENDOR_CLASS = Opt.VENDOR_CLASS.value
_ACK = MessageType.ACK.value
_DECLINE = MessageType.DECLINE.value
_DISCOVER = MessageType.DISCOVER.value
_INFORM = MessageType.INFORM.value
_NAK = MessageType.NAK.value
_OFFER = MessageType.OFFER.value
_RELEASE = MessageType.RELEASE.value
_REQUEST = MessageType.REQUEST.value

_U32 = struct.Struct("!I")
_NAMES = {t.value: t.name for t in MessageType}
_UNKNOWN_SEEN_LIMIT = 65536
# Distinct requests remembered (``DhcpCore.handle``): a rack's machines and a load generator's
# 1000 clients send a few shapes each; a request and its replies take ~2 KB.
MEMO_SIZE = 8192


@dataclass(frozen=True, slots=True)
class Segment:
    """A subnet racker serves: the PXE interface's own, or one behind a relay."""

    network: int
    mask: int
    pool: tuple[int, int] | None
    router: bytes | None
    mask_bytes: bytes
    broadcast_bytes: bytes

    @classmethod
    def build(
        cls,
        subnet: ipaddress.IPv4Network,
        pool: AddressRange | None = None,
        gateway: ipaddress.IPv4Address | None = None,
    ) -> Segment:
        return cls(
            network=int(subnet.network_address),
            mask=int(subnet.netmask),
            pool=(int(pool.first), int(pool.last)) if pool else None,
            router=gateway.packed if gateway else None,
            mask_bytes=subnet.netmask.packed,
            broadcast_bytes=subnet.broadcast_address.packed,
        )

    def contains(self, address: int) -> bool:
        return address & self.mask == self.network


@dataclass(frozen=True, slots=True)
class CoreSettings:
    server: ipaddress.IPv4Address  # our address on the PXE link: option 54 and siaddr
    local: Segment
    boot: BootSettings
    relays: tuple[Segment, ...] = ()
    dns: tuple[ipaddress.IPv4Address, ...] = ()
    lease_time: int = 86400
    pool_lease_time: int = 600
    unknown_clients: str = "ignore"  # or "pool"
    offer_hold: float = 60.0  # an offered address is kept for the client this long
    decline_quarantine: float = 600.0  # RFC 2131 §3.1 step 5: a declined address rests
    cache_threshold: float = 0.0  # see DhcpCore._cached_lease (dhcp.cache_threshold: 0.25)


@dataclass(frozen=True, slots=True)
class ReceiveInfo:
    relayed: bool = False  # arrived from UDP source port 67 (a relay agent, RFC 1542 §5.4)


@dataclass(slots=True)  # not frozen: a frozen __init__ costs ~0.5 µs more per message
class Outcome:
    reply: bytes | None
    destination: Destination | None
    events: list[Event]
    warning: str = ""  # for the operator's log (a DECLINE: another host has the address)


@dataclass(slots=True)
class _Request:
    """What one request's bytes say, worked out once (see ``DhcpCore.handle``).

    Everything here is a pure function of the bytes (xid and secs aside), the receive info and
    the core's fixed settings; lease state and the node's boot policy are not in it.
    """

    msg: Message  # as first seen: its xid is not this message's (``DhcpCore.handle`` has that)
    mtype: int
    mac: str
    client: ClientInfo
    kind: str  # for events: "bmc" or the client kind
    arch: int | None
    asked: str | None  # option 50, else ciaddr, as text (the "in" event's address)
    segment: Segment | None
    reason: str  # why there is no segment
    boot: BootChoice | None  # before the node's policy
    hostname: str | None
    replies: dict[tuple[int, int, int | None, bool], _Reply]


@dataclass(frozen=True, slots=True)
class _Reply:
    """An encoded reply to a ``_Request`` for one decision; only the xid is patched in."""

    template: bytes
    destination: Destination
    mtype: int
    address: str | None
    boot_file: str | None


class DhcpCore:
    def __init__(
        self,
        settings: CoreSettings,
        reservations: Mapping[str, ipaddress.IPv4Address],
        leases: Iterable[PersistedLease] = (),
        policy: BootPolicy = always_pxe,
        bmc_macs: Iterable[str] = (),
        *,
        memo_size: int = MEMO_SIZE,
        keeps: Keeps | None = None,
    ) -> None:
        self.settings = settings
        self._reserved = {mac: int(addr) for mac, addr in reservations.items()}
        self.leases = LeaseTable(leases, reserved=self._reserved.values())
        self._policy = policy
        self._bmc_macs = frozenset(bmc_macs)
        self._server_id = settings.server.packed
        self._server_text = str(settings.server).encode()
        self._dns = b"".join(a.packed for a in settings.dns)
        self._pool_unknown = settings.unknown_clients == "pool"
        self._seen_unknown: set[str] = set()
        self._lease_times: dict[int, tuple[bytes, bytes, bytes]] = {}  # options 51, 58, 59
        self._relay_segments: dict[bytes, tuple[Segment | None, str]] = {}  # by giaddr
        self._memo_size = memo_size
        self._keeps = keeps  # EventHub.keeps: are this client's message events wanted?
        # Requests already worked out, by their bytes without xid and secs; one table per
        # ReceiveInfo (the same bytes from a relay's port and from a client's differ).
        self._memo: dict[bool, dict[bytes, _Request]] = {True: {}, False: {}}

    def handle(self, data: bytes, info: ReceiveInfo, now: float) -> Outcome:
        """Decide on one message.

        A client repeats its requests byte for byte but for xid and secs (retransmissions,
        renewals, each boot of a node, each exchange of a load generator), so what the bytes
        say (the decoded message, client class, segment, boot file) is worked out once per
        distinct request and remembered (``memo_size`` of them, forgotten all at once when
        full), and so is each encoded reply: a repeated request costs the lease decisions and
        an xid patch. The lease table and the node's boot policy are consulted every time.
        """
        memo = self._memo[info.relayed]
        key = data[:4] + data[10:]  # without xid (4-7) and secs (8-9): neither changes a reply
        req = memo.get(key)
        if req is None:
            req = self._parse(data, info)  # raises PacketError: nothing is remembered
            if self._memo_size:
                if len(memo) >= self._memo_size:
                    memo.clear()  # bounded under a flood of made-up requests
                memo[key] = req
        xid_raw = data[4:8]
        xid = _U32.unpack(xid_raw)[0]
        mtype, mac = req.mtype, req.mac
        found: list[Event] = []  # a discovery, if this is a new unknown MAC
        answer: tuple[int, int, int | None] | None = None  # (message type, yiaddr, lease time)
        reason, segment = req.reason, req.segment
        if segment is not None:
            if mtype == _DISCOVER:
                answer, reason = self._discover(req, segment, now, found)
            elif mtype == _REQUEST:
                answer, reason = self._request(req, segment, now, found)
            elif mtype == _DECLINE:
                reason = self._decline(req.msg, mac, now)
            elif mtype == _RELEASE:
                reason = self._release(req.msg, mac, now)
            elif mtype == _INFORM:
                answer = (_ACK, 0, None)
            else:
                reason = f"{_NAMES[mtype]} is a server message"
        # Nobody wants a flood of strangers' events past the event log's budget: not built.
        keep = self._keeps is None or self._keeps(mac, 1 if answer is None else 2)
        events: list[Event] = found
        if keep:
            exchange = Exchange(mac, now, xid, req.arch, req.kind)
            events = [exchange.received(mtype, req.asked, reason), *found]
        if answer is None or segment is None:  # (there is an answer only with a segment)
            if mtype == _DECLINE:  # RFC 2131 §4.3.3: the client saw another host answer for it
                asked = req.msg.options.get(_REQUESTED_ADDRESS) or req.msg.ciaddr
                what = ntoa(asked) if len(asked) == 4 else f"option 50 {asked.hex()}"
                return Outcome(None, None, events, f"{mac} declined {what}: {reason}")
            return Outcome(None, None, events)
        out_type, yiaddr, lease_time = answer
        if out_type == _NAK:
            why = f"{ipaddress.IPv4Address(yiaddr)} is not this client's address"
            nak = self._nak(req.msg, xid, why)
            if keep:
                events.append(exchange.sent(_NAK, None, None, why))
            return Outcome(encode(nak), destination(req.msg, nak), events)
        pxe = req.boot is not None and self._policy(mac) is not BootAction.DISK
        reply_key = (out_type, yiaddr, lease_time, pxe)
        reply = req.replies.get(reply_key)
        if reply is None:
            if len(req.replies) >= 8:
                req.replies.clear()  # a pool client moving through many addresses
            reply = req.replies[reply_key] = self._build_reply(req, segment, answer, pxe)
        if keep:
            events.append(exchange.sent(out_type, reply.address, reply.boot_file))
        template = reply.template
        return Outcome(template[:4] + xid_raw + template[8:], reply.destination, events)

    def _parse(self, data: bytes, info: ReceiveInfo) -> _Request:
        msg = decode(data)
        if msg.op != BOOTREQUEST:
            raise PacketError(f"xid {msg.xid:#x}: op {msg.op} is not a BOOTREQUEST")
        if msg.htype != 1 or len(msg.chaddr) != 6:
            raise PacketError(f"xid {msg.xid:#x}: not Ethernet (htype {msg.htype})")
        options = msg.options
        raw_type = options.get(_MESSAGE_TYPE)
        if raw_type is None or len(raw_type) != 1 or raw_type[0] not in _NAMES:
            raise PacketError(
                f"xid {msg.xid:#x}: no valid DHCP message type (option 53); BOOTP is not served"
            )
        mac = msg.chaddr.hex(":")
        client = classify(options)
        asked = options.get(_REQUESTED_ADDRESS) or msg.ciaddr
        hostname = options.get(_HOSTNAME)
        segment, reason = self._segment(msg, info)
        return _Request(
            msg,
            raw_type[0],
            mac,
            client,
            "bmc" if mac in self._bmc_macs else client.kind,
            client.arches[0] if client.arches else None,
            ntoa(asked) if len(asked) == 4 and asked != ZERO4 else None,
            segment,
            reason,
            choose_boot(client, self.settings.boot),
            hostname.decode("utf-8", "replace")[:63] if hostname else None,
            {},
        )

    # -- per message type ----------------------------------------------------------------

    def _discover(
        self, req: _Request, segment: Segment, now: float, found: list[Event]
    ) -> tuple[tuple[int, int, int | None] | None, str]:
        hint = _address(req.msg.options.get(_REQUESTED_ADDRESS))
        address, lease_time, reason = self._assign(req, segment, now, hint, found)
        if address is None:
            return None, reason
        self.leases.offer(req.mac, address, now, self.settings.offer_hold)
        return (_OFFER, address, lease_time), ""

    def _request(
        self, req: _Request, segment: Segment, now: float, found: list[Event]
    ) -> tuple[tuple[int, int, int | None] | None, str]:
        msg, mac = req.msg, req.mac
        server_id = msg.options.get(_SERVER_ID)
        if server_id is not None and server_id != self._server_id:
            entry = self.leases.for_mac(mac)
            if entry is not None and entry.state is OFFERED:
                self.leases.release(mac, now)  # our offer was declined by choosing another
            chosen = ntoa(server_id) if len(server_id) == 4 else server_id.hex()
            return None, f"client chose server {chosen}"
        target = _address(msg.options.get(_REQUESTED_ADDRESS))
        if target is None and msg.ciaddr != ZERO4:
            target = _U32.unpack(msg.ciaddr)[0]  # RENEWING / REBINDING
        if target is None:
            return None, "REQUEST without a requested address (50) or ciaddr"
        address, lease_time, reason = self._assign(req, segment, now, target, found)
        if address is None:
            return None, reason  # RFC 2131 §4.3.2: no record of this client, stay silent
        if address != target:
            return (_NAK, target, None), ""
        client_id = msg.options.get(_CLIENT_ID)
        remaining = self._cached_lease(mac, address, lease_time, now, client_id, req.hostname)
        if remaining:
            return (_ACK, address, remaining), ""  # the lease as it stands (and as stored)
        self.leases.bind(mac, address, now + lease_time, client_id, req.hostname)
        return (_ACK, address, lease_time), ""

    def _cached_lease(
        self,
        mac: str,
        address: int,
        lease_time: int,
        now: float,
        client_id: bytes | None,
        hostname: str | None,
    ) -> int:
        """Seconds left of the client's bound lease if it is young enough to be acknowledged
        as it stands (``cache_threshold``), else 0: the lease is renewed and written again.

        Lease caching, as ISC dhcpd's ``dhcp-cache-threshold`` and Kea's ``cache-threshold``:
        a client that asks again soon after its lease was written (a node booting through
        firmware, iPXE and its OS does a DORA in each; a load generator does nothing else) is
        told the time left, not a new full lease, so nothing changes and nothing is written.
        The stored expiry stays what the client was told.
        """
        threshold = self.settings.cache_threshold
        if not threshold:
            return 0
        entry = self.leases.for_mac(mac)
        if entry is None or entry.state is not BOUND or entry.address != address:
            return 0
        if (client_id is not None and client_id != entry.client_id) or (
            hostname is not None and hostname != entry.hostname
        ):
            return 0  # something to write
        remaining = int(entry.expires - now)
        if not 1 <= remaining <= lease_time:  # (more left: the setting was shortened since)
            return 0
        return remaining if lease_time - remaining < threshold * lease_time else 0

    def _decline(self, msg: Message, mac: str, now: float) -> str:
        server_id = msg.options.get(_SERVER_ID)
        if server_id is not None and server_id != self._server_id:
            return "DECLINE for another server"
        address = _address(msg.options.get(_REQUESTED_ADDRESS))
        if address is None:
            return "DECLINE without a requested address (50)"
        entry = self.leases.for_mac(mac)
        if (entry is None or entry.address != address) and self._reserved.get(mac) != address:
            return "DECLINE for an address this client was not given"
        quarantine = self.settings.decline_quarantine
        self.leases.decline(mac, address, now + quarantine)
        if self._reserved.get(mac) == address:
            return (
                f"its reserved address {ipaddress.IPv4Address(address)} is in use by another"
                f" host: not offered for {quarantine:.0f} s; find the host answering for it"
            )
        return f"address in use by another host: quarantined for {quarantine:.0f} s"

    def _release(self, msg: Message, mac: str, now: float) -> str:
        entry = self.leases.for_mac(mac)
        if entry is None or _U32.pack(entry.address) != msg.ciaddr:
            return "RELEASE for an address this client does not hold"
        self.leases.release(mac, now)
        return "released"

    # -- decisions -----------------------------------------------------------------------

    def _segment(self, msg: Message, info: ReceiveInfo) -> tuple[Segment | None, str]:
        if msg.giaddr == ZERO4:
            if info.relayed:
                return None, "relayed (source port 67) but giaddr is 0.0.0.0"
            return self.settings.local, ""
        # A rack has a handful of relay agents: look each one's segment up once.
        found = self._relay_segments.get(msg.giaddr)
        if found is None:
            if len(self._relay_segments) >= 4096:
                self._relay_segments.clear()  # bounded under a flood of made-up giaddrs
            found = self._relay_segments[msg.giaddr] = self._relay_segment(msg.giaddr)
        return found

    def _relay_segment(self, raw: bytes) -> tuple[Segment | None, str]:
        giaddr = _U32.unpack(raw)[0]
        for segment in self.settings.relays:
            if segment.contains(giaddr):
                return segment, ""
        if self.settings.local.contains(giaddr):
            return self.settings.local, ""
        return None, f"no dhcp.relays segment contains giaddr {ntoa(raw)}"

    def _assign(
        self, req: _Request, segment: Segment, now: float, hint: int | None, found: list[Event]
    ) -> tuple[int | None, int, str]:
        """The address the client should have on its segment (None: no address, and why)."""
        mac = req.mac
        reserved = self._reserved.get(mac)
        if reserved is not None:
            if segment.contains(reserved):
                held = self.leases.at(reserved)
                if held is not None and held.state is DECLINED and held.expires > now:
                    # RFC 2131 §4.3.3: a declined address is not offered again while another
                    # host answers for it; dnsmasq disables a declined static address likewise.
                    why = (
                        f"reserved address {ipaddress.IPv4Address(reserved)} was declined (in"
                        f" use by another host): not offered for {held.expires - now:.0f} s more"
                    )
                    return None, 0, why
                return reserved, self.settings.lease_time, ""
        elif mac not in self._seen_unknown:
            if len(self._seen_unknown) >= _UNKNOWN_SEEN_LIMIT:
                self._seen_unknown.clear()  # bounded memory under a flood of random MACs
            self._seen_unknown.add(mac)
            vendor = req.client.vendor_class.decode("ascii", "replace")
            found.append(DiscoveryEvent("discovery", mac, now, vendor, req.client.arch))
        if not self._pool_unknown:
            if reserved is not None:
                return None, 0, f"reserved address {ipaddress.IPv4Address(reserved)} is not here"
            return None, 0, "unknown client ignored (dhcp.unknown_clients: ignore)"
        if segment.pool is None:
            return None, 0, "no dhcp.pool for this segment"
        first, last = segment.pool
        address = self.leases.allocate(first, last, mac, now, hint)
        if address is None:
            return None, 0, "pool exhausted"
        return address, self.settings.pool_lease_time, ""

    # -- replies -------------------------------------------------------------------------

    def _build_reply(
        self, req: _Request, segment: Segment, answer: tuple[int, int, int | None], pxe: bool
    ) -> _Reply:
        """Encode the reply to ``req`` for ``answer`` (with the boot file if ``pxe``)."""
        mtype, address, lease_time = answer
        msg = req.msg
        boot = req.boot if pxe else None
        yiaddr = _U32.pack(address)
        offer: dict[int, bytes] = {_SERVER_ID: self._server_id}
        if lease_time is not None:  # RFC 2131 §4.3.5: never in an ACK to an INFORM
            times = self._lease_times.get(lease_time)
            if times is None:
                if len(self._lease_times) >= 4096:
                    self._lease_times.clear()  # cached leases' times left: one per second
                times = self._lease_times[lease_time] = (
                    _U32.pack(lease_time),
                    _U32.pack(lease_time // 2),  # T1, RFC 2131 §4.4.5
                    _U32.pack(lease_time * 7 // 8),  # T2
                )
            offer[_LEASE_TIME], offer[_RENEWAL_TIME], offer[_REBINDING_TIME] = times
        offer[_SUBNET_MASK] = segment.mask_bytes
        if segment.router is not None:
            offer[_ROUTER] = segment.router
        if self._dns:
            offer[_DNS] = self._dns
        offer[_BROADCAST] = segment.broadcast_bytes
        bootfile = b""
        if boot is not None:
            bootfile = boot.file.encode()
            if boot.tftp:
                offer[_TFTP_SERVER] = self._server_text
            offer[_BOOTFILE] = bootfile + b"\0"  # NUL: old PXE ROMs, as dnsmasq does
            if boot.http_client:
                offer[_VENDOR_CLASS] = b"HTTPClient"
        reply = Message(
            op=BOOTREPLY,
            xid=msg.xid,
            chaddr=msg.chaddr,
            flags=msg.flags,
            ciaddr=msg.ciaddr if mtype == _ACK else ZERO4,
            yiaddr=yiaddr,
            siaddr=self._server_id if boot is not None else ZERO4,
            giaddr=msg.giaddr,
            file=bootfile if len(bootfile) < FILE_LEN else b"",
            options=ordered_options(msg, mtype, offer),
        )
        boot_file = reply.options.get(_BOOTFILE)  # trimmed away if option 57 leaves no room
        return _Reply(
            encode(reply),
            destination(msg, reply),
            mtype,
            ntoa(yiaddr) if address else None,
            boot_file.rstrip(b"\0").decode("ascii", "replace") if boot_file else None,
        )

    def _nak(self, msg: Message, xid: int, why: str) -> Message:
        offer = {_SERVER_ID: self._server_id, _MESSAGE: why.encode()}
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


def _address(raw: bytes | None) -> int | None:
    if raw is None or len(raw) != 4:
        return None
    value: int = _U32.unpack(raw)[0]
    return value
