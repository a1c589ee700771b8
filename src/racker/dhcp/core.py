"""The DHCP server's decisions, sans-I/O (layer 1: no sockets, no clock, no asyncio).

Theory of operation. ``DhcpCore.handle(data, info, now)`` takes one DHCP message as received
(the UDP payload) and returns an ``Outcome``: the reply bytes (or None), where to send them,
and the events to publish (one for the message in, one for the reply out, and a
``DiscoveryEvent`` the first time an unknown MAC shows up). A malformed message raises
``PacketError`` and changes nothing.

- What the bytes say (``_work_out``): the client's MAC and class, the serving segment and the
  boot file before the node's policy. Serving segment: a relayed message (giaddr set) is served
  from the ``dhcp.relays`` segment whose subnet contains giaddr, or from the local subnet if
  giaddr lies in it (RFC 2131 §4.3.1); otherwise from the local subnet of the PXE interface.
- Each message type has its method (``_discover``, ``_request``, ...), which returns the answer
  (message type, address, lease time) or why there is none.
- Address (``_assign``): a reserved MAC (node primary NIC or BMC, from the allocation table)
  always gets its reserved address; any other MAC is ignored (``dhcp.unknown_clients: ignore``)
  or leased one from the segment's pool (``pool``) with ``pool_lease_time``.
- REQUEST (RFC 2131 §4.3.2): SELECTING (server id + requested address), INIT-REBOOT (requested
  address only), RENEWING/REBINDING (ciaddr only) all reduce to "is this the address this
  client should have?": yes → ACK, no → NAK, client unknown to us → silence.
- Replies (``reply.build_reply``): addressed per RFC 2131 §4.1 (``reply.destination``).
- What is worked out once and remembered (requests, encoded replies, relay segments, young
  leases acknowledged as they stand) is ``memo``'s; only the lease decisions and the node's boot
  policy run for every message.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from racker.dhcp.boot import choose_boot, classify
from racker.dhcp.codec import ZERO4, Message, decode, encode
from racker.dhcp.events import Exchange, stamped
from racker.dhcp.leases import DECLINED, OFFERED, LeaseTable, PersistedLease
from racker.dhcp.memo import (
    MEMO_SIZE,
    EncodedReply,
    LeaseCaching,
    LeaseTimes,
    RelaySegments,
    Remembered,
    RequestMemo,
    ntoa,
)
from racker.dhcp.options import BOOTREQUEST, MessageType, Opt
from racker.dhcp.reply import Destination, Server, build_nak, build_reply, destination
from racker.dhcp.selftest import OPTION as _SELFTEST
from racker.dhcp.selftest import SelfTestGate
from racker.dhcp.settings import CoreSettings, DhcpSettings, Segment
from racker.errors import PacketError
from racker.events import DiscoveryEvent, Event, Keeps
from racker.model import BootAction, BootPolicy, always_pxe

# Plain ints on the hot path (an IntEnum member lookup is an attribute lookup and more).
_BOOTFILE = Opt.BOOTFILE.value
_CLIENT_ID = Opt.CLIENT_ID.value
_HOSTNAME = Opt.HOSTNAME.value
_MESSAGE_TYPE = Opt.MESSAGE_TYPE.value
_REQUESTED_ADDRESS = Opt.REQUESTED_ADDRESS.value
_SERVER_ID = Opt.SERVER_ID.value
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

# An answer: (message type, yiaddr, lease time; None in an ACK to an INFORM).
Answer = tuple[int, int, int | None]
# What a message type's method decides: the answer, or None and why there is none.
Decision = tuple[Answer | None, str]
# A message type's method: (the request, its segment, now, discoveries to report) -> Decision.
Decide = Callable[[Remembered, Segment, float, list[Event]], Decision]


@dataclass(frozen=True, slots=True)
class ReceiveInfo:
    relayed: bool = False  # arrived from UDP source port 67 (a relay agent, RFC 1542 §5.4)


@dataclass(slots=True)  # not frozen: a frozen __init__ is slower, and one is built per message
class Outcome:
    reply: bytes | None
    destination: Destination | None
    events: list[Event]
    warning: str = ""  # for the operator's log (a DECLINE: another host has the address)


class DhcpCore:
    """One DHCP server's decisions and lease table (see the module's docstring)."""

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
        ignored: Iterable[str] = (),
        selftest: SelfTestGate | None = None,
    ) -> None:
        self.settings = settings
        self._selftest = selftest  # racker selftest's proven requests: no lease (selftest.py)
        self._reserved = {mac: int(addr) for mac, addr in reservations.items()}
        self.leases = LeaseTable(leases, reserved=self._reserved.values())
        self._policy = policy
        self._bmc_macs = frozenset(bmc_macs)
        self._ignored = frozenset(ignored)  # never answered (a fixed part of the memo's key)
        self._server = Server(
            settings.server.packed,
            str(settings.server).encode(),
            b"".join(a.packed for a in settings.dns),
        )
        self._pool_unknown = settings.unknown_clients == "pool"
        self._seen_unknown: set[str] = set()
        self._keeps = keeps  # EventHub.keeps: are this client's message events wanted?
        self._memo_size = memo_size
        self._requests = RequestMemo(self._work_out, memo_size)
        self._relay_segments = RelaySegments(self._relay_segment)
        self._lease_times = LeaseTimes()
        self._caching = LeaseCaching(self.leases, settings.cache_threshold)
        # One method per message type (RFC 2132 §9.6); OFFER, ACK and NAK are the server's.
        self._decide: dict[int, Decide] = {
            _DISCOVER: self._discover,
            _REQUEST: self._request,
            _DECLINE: self._decline,
            _RELEASE: self._release,
            _INFORM: self._inform,
            _OFFER: self._from_a_server,
            _ACK: self._from_a_server,
            _NAK: self._from_a_server,
        }

    def reconfigured(self, settings: DhcpSettings, leases: Iterable[PersistedLease]) -> DhcpCore:
        """A core for new settings holding ``leases``, with this one's boot policy, event
        budget and memo size (SIGHUP)."""
        return build_core(
            settings,
            leases,
            policy=self._policy,
            keeps=self._keeps,
            memo_size=self._memo_size,
            selftest=self._selftest,
        )

    def handle(self, data: bytes, info: ReceiveInfo, now: float) -> Outcome:
        """Decide on one message (see the module's docstring)."""
        req = self._requests.recall(data, info)  # raises PacketError: nothing has changed
        if _SELFTEST in req.msg.options and self._selftest is not None:
            tested = self._selftest.answer(req, data, self.settings, self._server, now)
            if tested is not None:
                return Outcome(*tested)
        mtype, mac, segment = req.mtype, req.mac, req.segment
        found: list[Event] = []  # a discovery, if this is a new unknown MAC
        answer: Answer | None = None
        reason = req.reason
        if segment is not None:
            answer, reason = self._decide[mtype](req, segment, now, found)
        # Nobody wants a flood of strangers' events past the event log's budget: not built.
        keep = self._keeps is None or self._keeps(mac, 1 if answer is None else 2)
        events: list[Event] = found
        if keep:
            xid = _U32.unpack_from(data, 4)[0]
            events = [stamped(req.event, now, xid, reason), *found]
        if answer is None or segment is None:  # (there is an answer only with a segment)
            if mtype == _DECLINE:  # RFC 2131 §4.3.3: the client saw another host answer for it
                asked = req.msg.options.get(_REQUESTED_ADDRESS) or req.msg.ciaddr
                what = ntoa(asked) if len(asked) == 4 else f"option 50 {asked.hex()}"
                return Outcome(None, None, events, f"{mac} declined {what}: {reason}")
            return Outcome(None, None, events)
        out_type, yiaddr, lease_time = answer
        if out_type == _NAK:
            why = f"{ipaddress.IPv4Address(yiaddr)} is not this client's address"
            nak = build_nak(req.msg, _U32.unpack_from(data, 4)[0], why, self._server.id)
            if keep:
                events.append(stamped(req.exchange.sent(_NAK, None, None), now, xid, why))
            return Outcome(encode(nak), destination(req.msg, nak), events)
        pxe = req.boot is not None and self._policy(mac) is not BootAction.DISK
        reply_key = (out_type, yiaddr, lease_time, pxe)
        reply = req.replies.get(reply_key)
        if reply is None:
            reply = req.remember(reply_key, self._reply(req, segment, answer, pxe))
        if keep:
            events.append(stamped(reply.event, now, xid))
        template = reply.template
        return Outcome(template[:4] + data[4:8] + template[8:], reply.destination, events)

    def _work_out(self, data: bytes, info: ReceiveInfo) -> Remembered:
        """What a request's bytes say (``memo.RequestMemo`` remembers it)."""
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
        mtype, mac = raw_type[0], msg.chaddr.hex(":")
        client = classify(options)
        asked = options.get(_REQUESTED_ADDRESS) or msg.ciaddr
        hostname = options.get(_HOSTNAME)
        segment, reason = self._segment(msg, info)
        if mac in self._ignored:
            segment, reason = None, "the management node's own NIC: racker never answers it"
        exchange = Exchange(
            mac,
            mtype,
            client.arches[0] if client.arches else None,
            "bmc" if mac in self._bmc_macs else client.kind,
            ntoa(asked) if len(asked) == 4 and asked != ZERO4 else None,
        )
        return Remembered(
            msg,
            mtype,
            mac,
            client,
            exchange,
            exchange.received(),
            segment,
            reason,
            choose_boot(client, self.settings.boot, mac),
            hostname.decode("utf-8", "replace")[:63] if hostname else None,
            {},
        )

    # -- per message type ----------------------------------------------------------------

    def _discover(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        hint = _address(req.msg.options.get(_REQUESTED_ADDRESS))
        address, lease_time, reason = self._assign(req, segment, now, hint, found)
        if address is None:
            return None, reason
        self.leases.offer(req.mac, address, now, self.settings.offer_hold)
        return (_OFFER, address, lease_time), ""

    def _request(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        msg, mac = req.msg, req.mac
        server_id = msg.options.get(_SERVER_ID)
        if server_id is not None and server_id != self._server.id:
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
        left = self._caching.time_left(mac, address, lease_time, now, client_id, req.hostname)
        if left:
            return (_ACK, address, left), ""  # the lease as it stands (and as stored)
        self.leases.bind(mac, address, now + lease_time, client_id, req.hostname)
        return (_ACK, address, lease_time), ""

    def _decline(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        msg, mac = req.msg, req.mac
        server_id = msg.options.get(_SERVER_ID)
        if server_id is not None and server_id != self._server.id:
            return None, "DECLINE for another server"
        address = _address(msg.options.get(_REQUESTED_ADDRESS))
        if address is None:
            return None, "DECLINE without a requested address (50)"
        entry = self.leases.for_mac(mac)
        if (entry is None or entry.address != address) and self._reserved.get(mac) != address:
            return None, "DECLINE for an address this client was not given"
        quarantine = self.settings.decline_quarantine
        self.leases.decline(mac, address, now + quarantine)
        if self._reserved.get(mac) == address:
            return None, (
                f"its reserved address {ipaddress.IPv4Address(address)} is in use by another"
                f" host: not offered for {quarantine:.0f} s; find the host answering for it"
            )
        return None, f"address in use by another host: quarantined for {quarantine:.0f} s"

    def _release(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        entry = self.leases.for_mac(req.mac)
        if entry is None or _U32.pack(entry.address) != req.msg.ciaddr:
            return None, "RELEASE for an address this client does not hold"
        self.leases.release(req.mac, now)
        return None, "released"

    def _inform(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        return (_ACK, 0, None), ""  # RFC 2131 §4.3.5: configuration only, no lease

    def _from_a_server(
        self, req: Remembered, segment: Segment, now: float, found: list[Event]
    ) -> Decision:
        return None, f"{_NAMES[req.mtype]} is a server message"

    # -- decisions -----------------------------------------------------------------------

    def _segment(self, msg: Message, info: ReceiveInfo) -> tuple[Segment | None, str]:
        if msg.giaddr == ZERO4:
            if info.relayed:
                return None, "relayed (source port 67) but giaddr is 0.0.0.0"
            return self.settings.local, ""
        return self._relay_segments.get(msg.giaddr)

    def _relay_segment(self, raw: bytes) -> tuple[Segment | None, str]:
        giaddr = _U32.unpack(raw)[0]
        for segment in self.settings.relays:
            if segment.contains(giaddr):
                return segment, ""
        if self.settings.local.contains(giaddr):
            return self.settings.local, ""
        return None, f"no dhcp.relays segment contains giaddr {ntoa(raw)}"

    def _assign(
        self, req: Remembered, segment: Segment, now: float, hint: int | None, found: list[Event]
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

    def _reply(self, req: Remembered, segment: Segment, answer: Answer, pxe: bool) -> EncodedReply:
        """The encoded reply to ``req`` for ``answer`` (with the boot file if ``pxe``)."""
        mtype, address, lease_time = answer
        times = None if lease_time is None else self._lease_times.get(lease_time)
        boot = req.boot if pxe else None
        reply = build_reply(req.msg, mtype, _U32.pack(address), times, segment, boot, self._server)
        boot_file = reply.options.get(_BOOTFILE)  # trimmed away if option 57 leaves no room
        event = req.exchange.sent(
            mtype,
            ntoa(reply.yiaddr) if address else None,
            boot_file.rstrip(b"\0").decode("ascii", "replace") if boot_file else None,
        )
        return EncodedReply(encode(reply), destination(req.msg, reply), event)


def build_core(
    settings: DhcpSettings,
    leases: Iterable[PersistedLease] = (),
    *,
    policy: BootPolicy = always_pxe,
    keeps: Keeps | None = None,
    memo_size: int = MEMO_SIZE,
    selftest: SelfTestGate | None = None,
) -> DhcpCore:
    """The DHCP core for ``racker serve``: ``settings`` from ``settings.settings_from_config``;
    ``leases``: the store's (``Store.leases()``); ``policy``: the node directory's boot
    action; ``keeps``: ``EventHub.keeps`` (None: every event is built); ``selftest``: the gate that
    recognises racker selftest's requests (None: none is recognised)."""
    return DhcpCore(
        settings.core,
        settings.reservations,
        leases,
        policy,
        settings.bmc_macs,
        memo_size=memo_size,
        keeps=keeps,
        ignored=settings.ignored,
        selftest=selftest,
    )


def _address(raw: bytes | None) -> int | None:
    if raw is None or len(raw) != 4:
        return None
    value: int = _U32.unpack(raw)[0]
    return value
