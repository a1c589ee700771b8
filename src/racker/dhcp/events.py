"""``DhcpEvent``s for the hot path (layer 1: pure).

Every DHCP message in and out gets an event (the store's event log and the orchestrator read
them), two per message. Both are built from one ``Exchange``, the facts the message and its
reply share. A frozen dataclass' generated ``__init__`` assigns each of the 11 fields through
``object.__setattr__``, a large share of the core's time per message (profiled); the events
here fill the instance dict directly instead. The result is equal to a constructed one, and a
unit test keeps the field set in step with ``racker.events``.
"""

from __future__ import annotations

from typing import NamedTuple

from racker.dhcp.options import MessageType
from racker.events import DhcpEvent, DiscoveryEvent

_NAMES = {t.value: t.name for t in MessageType}
_KINDS = {t.value: t.name.lower() for t in MessageType}

_new = object.__new__


class Exchange(NamedTuple):
    """What the events of one message received (and of the reply to it) share."""

    mac: str
    ts: float  # when the message was received
    xid: int  # the client's transaction id, also the reply's
    client_arch: int | None  # option 93 (first value), or from option 60
    client_kind: str  # "bios", "uefi", "ipxe", ..., or "bmc"

    def received(self, mtype: int, asked: str | None, reason: str) -> DhcpEvent:
        """The event of the message in (type ``mtype``): the address the client asked for,
        and why it is not answered (``reason``; empty if it is)."""
        mac, ts, xid, client_arch, client_kind = self
        event: DhcpEvent = _new(DhcpEvent)
        event.__dict__.update(
            kind=_KINDS[mtype],
            mac=mac,
            ts=ts,
            xid=xid,
            message=_NAMES[mtype],
            direction="in",
            client_arch=client_arch,
            client_kind=client_kind,
            address=asked,
            boot_file=None,
            reason=reason,
        )
        return event

    def sent(
        self, mtype: int, address: str | None, boot_file: str | None, reason: str = ""
    ) -> DhcpEvent:
        """The event of the reply out (type ``mtype``): the address it gives, the boot file,
        and for a NAK why (``reason``)."""
        mac, ts, xid, client_arch, client_kind = self
        event: DhcpEvent = _new(DhcpEvent)
        event.__dict__.update(
            kind=_KINDS[mtype],
            mac=mac,
            ts=ts,
            xid=xid,
            message=_NAMES[mtype],
            direction="out",
            client_arch=client_arch,
            client_kind=client_kind,
            address=address,
            boot_file=boot_file,
            reason=reason,
        )
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
    if event.direction == "out":
        if event.message == "NAK":
            return f"DHCP NAK to {who}: {event.reason}"
        boot = f"boot {event.boot_file}" if event.boot_file else "no boot file"
        return f"DHCP {event.message} {event.address} to {who}, {boot}"
    if event.reason and event.message != "DECLINE":  # the server warns of a DECLINE itself
        return f"DHCP {event.message} from {who} not answered: {event.reason}"
    return None
