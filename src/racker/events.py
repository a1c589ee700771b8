"""Events the boot stack publishes (layer 0).

Servers never call the orchestrator: they are handed a ``Publish`` callable and report what
their clients did. The orchestrator, the logs, the event log in SQLite and ``--json`` output all
consume the same objects. Every event is a frozen dataclass; ``to_dict`` gives its JSON form.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Event:
    source: ClassVar[str] = "racker"

    kind: str  # what happened, e.g. "discover", "ack", "transfer-finished", "installed"
    mac: str | None  # the client it concerns, when known (normalised MAC)
    ts: float  # wall-clock time (time.time()) when it happened

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"source": self.source}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            data[f.name] = value
        return data


Publish = Callable[[Event], None]
# Would events about this MAC (how many) be stored or delivered? A hot path asks before building
# them; False means they are counted as left out already (``EventHub.keeps``).
Keeps = Callable[[str, int], bool]


def discard(_event: Event) -> None:
    """A ``Publish`` that drops everything (tests, one-shot commands)."""


@dataclass(frozen=True)
class DhcpEvent(Event):
    source: ClassVar[str] = "dhcp"

    xid: int = 0
    message: str = ""  # DHCP message type: DISCOVER, OFFER, REQUEST, ACK, NAK, ...
    direction: str = "in"  # "in" from a client, "out" to a client
    client_arch: int | None = None  # option 93 (first value), or from option 60
    client_kind: str = ""  # "bios", "uefi", "uefi-http", "ipxe", "os", "bmc", "unknown"
    address: str | None = None  # offered / acknowledged / requested address
    boot_file: str | None = None
    reason: str = ""  # why a packet was dropped or NAKed


@dataclass(frozen=True)
class DiscoveryEvent(Event):
    """A MAC not in the inventory asked for an address (reported once per MAC)."""

    source: ClassVar[str] = "dhcp"

    vendor_class: str = ""
    client_arch: int | None = None


@dataclass(frozen=True)
class RogueDhcpEvent(Event):
    """A DHCP server other than racker answered on the PXE network (kind "rogue-dhcp"; at most
    once a minute per server). ``mac`` is None: the event concerns no client of the rack."""

    source: ClassVar[str] = "dhcp"

    server_ip: str = ""
    server_mac: str = ""
    message_type: str = ""  # OFFER, ACK, NAK or BOOTP
    interface: str = ""
    offered: str | None = None  # the address it offered or acknowledged
    replies: int = 0  # its replies seen so far


@dataclass(frozen=True)
class TftpEvent(Event):
    source: ClassVar[str] = "tftp"

    peer: str = ""  # ip:port
    file: str = ""
    bytes: int = 0
    blksize: int = 512
    windowsize: int = 1
    duration: float = 0.0
    resends: int = 0
    error: str = ""


@dataclass(frozen=True)
class HttpEvent(Event):
    source: ClassVar[str] = "http"

    peer: str = ""
    method: str = "GET"
    path: str = ""  # path without query string (tokens never go in events)
    status: int = 0
    bytes: int = 0
    duration: float = 0.0


@dataclass(frozen=True)
class PhoneHomeEvent(Event):
    """The installer reported progress: install-started, installed, failed."""

    source: ClassVar[str] = "phone-home"

    message: str = ""


@dataclass(frozen=True)
class BmcEvent(Event):
    source: ClassVar[str] = "bmc"

    node: str = ""
    action: str = ""  # "power-on", "bootdev-pxe", ...
    ok: bool = True
    error: str = ""
    duration: float = 0.0


@dataclass(frozen=True)
class EventLogOverflow(Event):
    """The event log left out ``left_out`` events of clients outside the inventory in the last
    ``seconds`` (more than ``limit`` a second: a flood); subscribers still saw them all."""

    left_out: int = 0
    seconds: float = 0.0
    limit: int = 0


@dataclass(frozen=True)
class NodeStateEvent(Event):
    """The orchestrator moved a node from one provisioning state to another."""

    source: ClassVar[str] = "bootstrap"

    node: str = ""
    old: str = ""
    new: str = ""
    attempt: int = 0
    reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
