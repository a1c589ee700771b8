"""``DhcpEvent``s for the hot path (layer 1: pure).

Every DHCP message in and out gets an event (the store's event log and the orchestrator read
them), two per message. Both are built from one ``Exchange``: the facts a client's request and
the reply to it share. Only the time, the xid and the reason change from one message to the
next, so an ``Exchange`` gives an event's other fields (``received``, ``sent``) once, and
``stamped`` makes each message's event from them. The core works the fields out once per
distinct request and reply, and remembers them with it (``memo``).

A frozen dataclass' generated ``__init__`` assigns each of the 11 fields of a ``DhcpEvent``
through ``object.__setattr__``, a large share of the core's time per message (profiled);
``stamped`` fills the instance dict directly instead. The result is equal to a constructed
one, and a unit test keeps the field set in step with ``racker.events``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from racker.dhcp.options import MessageType
from racker.events import DhcpEvent, DiscoveryEvent

_NAMES = {t.value: t.name for t in MessageType}
_KINDS = {t.value: t.name.lower() for t in MessageType}

_new = object.__new__

# A DhcpEvent's fields, in the order of its dataclass fields, but for the time and the xid
# (and the reason, unless a reply says why): what ``stamped`` makes events from.
EventFields = Mapping[str, object]


class Exchange(NamedTuple):
    """What the events of a client's request and of the reply to it share."""

    mac: str
    mtype: int  # the request's message type (option 53)
    client_arch: int | None  # option 93 (first value), or from option 60
    client_kind: str  # "bios", "uefi", "ipxe", ..., or "bmc"
    asked: str | None  # the address asked for: option 50, else ciaddr

    def received(self) -> EventFields:
        """The fields of the event of the request."""
        return _fields(self, self.mtype, "in", self.asked, None)

    def sent(self, mtype: int, address: str | None, boot_file: str | None) -> EventFields:
        """The fields of the event of a reply (type ``mtype``) giving ``address`` and
        ``boot_file``."""
        return _fields(self, mtype, "out", address, boot_file)


def _fields(
    exchange: Exchange, mtype: int, direction: str, address: str | None, boot_file: str | None
) -> EventFields:
    return {
        "kind": _KINDS[mtype],
        "mac": exchange.mac,
        "ts": 0.0,
        "xid": 0,
        "message": _NAMES[mtype],
        "direction": direction,
        "client_arch": exchange.client_arch,
        "client_kind": exchange.client_kind,
        "address": address,
        "boot_file": boot_file,
        "reason": "",
    }


def stamped(fields: EventFields, ts: float, xid: int, reason: str = "") -> DhcpEvent:
    """The ``DhcpEvent`` of ``fields`` for the message with ``xid`` received at ``ts``;
    ``reason``: why a request is not answered, or why a NAK. Equal to a constructed one."""
    event: DhcpEvent = _new(DhcpEvent)
    values = event.__dict__
    values.update(fields)  # in field order; the keys set below keep their places
    values["ts"] = ts
    values["xid"] = xid
    values["reason"] = reason
    return event


def log_line(event: DhcpEvent | DiscoveryEvent) -> str | None:
    """What an operator reads in the log (INFO) for a DHCP event, or None (nothing to say).

    One line per answer (OFFER, ACK, NAK) and per request left unanswered with its reason,
    the way dnsmasq logs DHCP transactions; an answered request says nothing of its own.
    """
    if isinstance(event, DiscoveryEvent):
        vendor = f", vendor class {event.vendor_class!r}" if event.vendor_class else ""
        return (
            f"DHCP: {event.mac} is not in nodes.csv and asks for an address{vendor}"
            " (listed once per MAC; dhcp.unknown_clients decides whether it gets one)"
        )
    who = f"{event.mac} ({event.client_kind})" if event.client_kind else event.mac
    if event.kind == "selftest":  # racker selftest's answer (dhcp/selftest.py): no lease
        boot = f"boot {event.boot_file}" if event.boot_file else "no boot file"
        return f"DHCP selftest {event.message} {event.address} to {who}, {boot} (no lease)"
    if event.direction == "out":
        if event.message == "NAK":
            return f"DHCP NAK to {who}: {event.reason}"
        boot = f"boot {event.boot_file}" if event.boot_file else "no boot file"
        return f"DHCP {event.message} {event.address} to {who}, {boot}"
    if event.reason and event.message != "DECLINE":  # the server warns of a DECLINE itself
        return f"DHCP {event.message} from {who} not answered: {event.reason}"
    return None
