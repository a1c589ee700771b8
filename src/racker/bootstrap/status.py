"""``racker status``: one row per node, BMCs queried concurrently (layer 4).

Inventory, addresses and provisioning state come from the store; power and boot device from
each node's BMC, all at once, each bounded by a timeout, so one dead BMC costs one timeout in
total, not one per node. The CLI prints the rows (``racker.cli.tables``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from racker.bootstrap.storage import EventLog, NodeStateStore
from racker.errors import BmcError
from racker.model import Node
from racker.power.base import BmcTarget, PowerDriver


class StatusStore(NodeStateStore, EventLog, Protocol):
    """What ``collect_status`` reads: the stored phases and each node's last event."""


@dataclass
class StatusRow:
    node: str
    node_type: str
    role: str
    primary_mac: str
    bmc_mac: str
    secondary_mac: str
    address: str
    bmc_address: str
    bmc_reachable: bool | None  # None: not asked (no BMC target)
    power: str
    boot_device: str
    state: str
    since: float | None
    attempt: int
    reason: str
    last_event: str
    last_event_ts: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _query_bmc(
    driver: PowerDriver, target: BmcTarget | BmcError, full: bool, timeout: float
) -> tuple[bool | None, str, str]:
    if isinstance(target, BmcError):
        return None, "unknown", f"({target.message.split(': ', 1)[-1]})"
    try:
        async with asyncio.timeout(timeout):
            power = str(await driver.power_status(target))
            boot = str(await driver.boot_device(target)) if full else ""
    except BmcError as exc:
        return False, "unknown", exc.message.split(": ", 1)[-1] if full else ""
    except TimeoutError:
        return False, "unknown", "(timeout)" if full else ""
    return True, power, boot


def _describe_event(event: Mapping[str, Any]) -> str:
    source, kind = event.get("source", "?"), event.get("kind", "?")
    if source == "bootstrap":
        return f"{event.get('old') or '-'} -> {event.get('new')}"
    detail = str(event.get("path") or event.get("file") or event.get("message") or "")
    if detail.lower() == str(kind).lower():
        detail = ""  # a DHCP event's kind is its message type: "dhcp ack", not "dhcp ack ACK"
    if source == "dhcp" and event.get("address"):
        detail = f"{detail} {event['address']}".strip()
    text = f"{source} {kind} {detail}".strip()
    if source == "dhcp" and event.get("direction") == "in" and event.get("reason"):
        # Not answered: the reason is why the node has no address (e.g. a declined reservation).
        text += f": {event['reason']}"
    return text


async def collect_status(
    nodes: Sequence[Node],
    targets: Mapping[str, BmcTarget | BmcError],
    driver: PowerDriver,
    store: StatusStore,
    addresses: Mapping[str, str],
    full: bool = False,
    timeout: float = 10.0,
) -> list[StatusRow]:
    """A row per node (in ``nodes`` order); ``targets`` is keyed by primary MAC."""
    states = store.node_states()
    answers = await asyncio.gather(
        *(_query_bmc(driver, targets[n.primary_mac], full, timeout) for n in nodes)
    )
    rows = []
    for node, (reachable, power, boot) in zip(nodes, answers, strict=True):
        state = states.get(node.primary_mac)
        data = (state.data or {}) if state else {}
        last = store.events(node.primary_mac, limit=1)
        rows.append(
            StatusRow(
                node=node.hostname,
                node_type=node.node_type,
                role=str(data.get("role") or ""),
                primary_mac=node.primary_mac,
                bmc_mac=node.bmc_mac,
                secondary_mac=node.secondary_mac or "",
                address=addresses.get(node.primary_mac, ""),
                bmc_address=addresses.get(node.bmc_mac, ""),
                bmc_reachable=reachable,
                power=power,
                boot_device=boot,
                state=state.state if state else "new",
                since=state.since if state else None,
                attempt=state.attempt if state else 0,
                reason=state.reason if state else "",
                last_event=_describe_event(last[-1]) if last else "",
                last_event_ts=float(last[-1].get("ts", 0.0)) if last else None,
            )
        )
    return rows


class RogueLog(Protocol):
    """The stored events of one kind (``racker.store.Store``)."""

    def events_of_kind(self, kind: str, since: float, limit: int = 100) -> list[dict[str, Any]]: ...


@dataclass
class RogueSighting:
    """A DHCP server other than racker, as the event log of ``racker serve`` recorded it."""

    server_ip: str
    server_mac: str
    interface: str
    message_type: str
    last_seen: float
    warnings: int  # rogue-dhcp events (at most one a minute per server)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rogue_dhcp_servers(
    store: RogueLog, now: float, window: float = 86400.0, limit: int = 1000
) -> list[RogueSighting]:
    """The rogue DHCP servers ``racker serve`` warned about in the last ``window`` seconds,
    the most recently seen first."""
    found: dict[tuple[str, str], RogueSighting] = {}
    for event in store.events_of_kind("rogue-dhcp", now - window, limit):
        key = (str(event.get("server_ip", "?")), str(event.get("server_mac", "?")))
        sighting = found.get(key)
        ts = float(event.get("ts", 0.0))
        if sighting is None:
            sighting = found[key] = RogueSighting(key[0], key[1], "", "", ts, 0)
        sighting.warnings += 1
        sighting.last_seen = max(sighting.last_seen, ts)
        sighting.interface = str(event.get("interface", ""))
        sighting.message_type = str(event.get("message_type", ""))
    return sorted(found.values(), key=lambda s: s.last_seen, reverse=True)
