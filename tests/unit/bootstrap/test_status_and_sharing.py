"""racker status rows (fake BMCs) and following another process's event log."""

from __future__ import annotations

import asyncio
from pathlib import Path

from racker.bootstrap.sharing import event_from_dict, follow_store
from racker.bootstrap.status import collect_status
from racker.cli.tables import status_table
from racker.errors import BmcNotConfigured
from racker.events import DhcpEvent, DiscoveryEvent, Event, HttpEvent, NodeStateEvent
from racker.model import Node, NodeState
from racker.power.base import BmcCredentials, BmcTarget, BootDevice, BootSetting, PowerState
from racker.power.fake import FakeDriver
from racker.store import Store
from racker.store_writer import StoreReader

NODES = [
    Node(2, 1, "52:54:00:00:00:01", "52:54:00:00:01:01", None, "big"),
    Node(3, 2, "52:54:00:00:00:02", "52:54:00:00:01:02", "52:54:00:00:02:02", "small"),
    Node(4, 3, "52:54:00:00:00:03", "52:54:00:00:01:03", None, "small"),
]


async def test_status_rows(tmp_path: Path) -> None:
    driver = FakeDriver(timeout=1.0)
    creds = BmcCredentials("u", "p")
    driver.bmc("10.0.1.1").power = PowerState.ON
    driver.bmc("10.0.1.1").boot = BootSetting(BootDevice.DISK, persistent=True)
    driver.bmc("10.0.1.2").reachable = False
    targets = {
        NODES[0].primary_mac: BmcTarget("big-000001", "10.0.1.1", creds),
        NODES[1].primary_mac: BmcTarget("small-000002", "10.0.1.2", creds),
        NODES[2].primary_mac: BmcNotConfigured("small-000003", "no address allocated"),
    }
    with Store.open(tmp_path) as store:
        store.set_node_state(
            NodeState(NODES[0].primary_mac, "ready", 100.0, 1, "", {"role": "worker"})
        )
        store.append_events(
            [
                NodeStateEvent(
                    "transition", NODES[0].primary_mac, 100.0, node="n", old="rebooted", new="ready"
                )
            ]
        )
        rows = await collect_status(
            NODES, targets, driver, store, {NODES[0].primary_mac: "10.0.0.64"}, full=True
        )
    by = {r.node: r for r in rows}
    assert [r.node for r in rows] == ["big-000001", "small-000002", "small-000003"]
    big = by["big-000001"]
    assert (big.bmc_reachable, big.power, big.boot_device) == (True, "on", "disk (persistent)")
    assert (big.state, big.role, big.address, big.since) == ("ready", "worker", "10.0.0.64", 100.0)
    assert big.last_event == "rebooted -> ready"
    assert by["small-000002"].bmc_reachable is False
    assert by["small-000002"].state == "new"
    assert by["small-000002"].secondary_mac == "52:54:00:00:02:02"
    assert by["small-000003"].bmc_reachable is None
    assert "no address allocated" in by["small-000003"].boot_device
    assert len(status_table(rows, full=True, now=160.0).columns) == 16
    assert len(status_table(rows).columns) == 9


def test_event_round_trip() -> None:
    dhcp = DhcpEvent(
        "ack", "52:54:00:00:00:01", 1.0, message="ACK", direction="out", client_kind="os"
    )
    assert event_from_dict(dhcp.to_dict()) == dhcp
    http = HttpEvent("request", None, 2.0, peer="10.0.0.9", path="/ipxe", status=200)
    assert event_from_dict({**http.to_dict(), "from_the_future": 1}) == http
    assert event_from_dict(DiscoveryEvent("discovery", "52:54:00:00:00:09", 1.0).to_dict()) is None
    assert event_from_dict({"source": "bootstrap", "kind": "transition"}) is None
    assert event_from_dict({"source": "dhcp", "kind": "ack"}) is None  # mac and ts missing


async def test_follow_store_feeds_only_new_events(tmp_path: Path) -> None:
    old = DhcpEvent("discover", "52:54:00:00:00:01", 1.0, message="DISCOVER")
    new = HttpEvent("request", "52:54:00:00:00:01", 2.0, path="/ignition", status=200)
    seen: list[Event] = []
    stop = asyncio.Event()
    with Store.open(tmp_path) as writer:
        writer.append_events([old])
        reader = StoreReader(writer.path)  # each read on a thread, on a connection of its own
        task = asyncio.create_task(follow_store(reader, seen.append, stop, interval=0.01))
        await asyncio.sleep(0.05)
        writer.append_events([new])
        for _ in range(200):
            if seen:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
    assert seen == [new]
