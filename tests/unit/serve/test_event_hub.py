"""The event hub: subscribers see every event, the store gets them in batches, old ones go."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from racker.app.hub import EventHub
from racker.events import DhcpEvent, Event, HttpEvent, NodeStateEvent
from racker.store import Store
from racker.store_writer import StoreWriter


def test_flush_writes_batches_and_prunes_periodically(tmp_path: Path) -> None:
    seen: list[Event] = []
    with Store.open(tmp_path) as store:
        hub = EventHub(store)
        hub.KEEP_EVENTS, hub.PRUNE_EVERY = 5, 2
        hub.subscribers.append(seen.append)

        def broken(_event: Event) -> None:
            raise RuntimeError("a broken subscriber")

        hub.subscribers.append(broken)
        for flush in range(3):
            for i in range(4):
                hub.publish(DhcpEvent("ack", "m", 0.0, xid=flush * 4 + i))
            hub.flush()
        assert len(seen) == 12  # the broken subscriber did not stop the others
        # Flush 2 pruned to the newest 5 of 8; flush 3 added 4 more.
        assert [e["xid"] for e in store.events()] == [3, 4, 5, 6, 7, 8, 9, 10, 11]


def test_strangers_events_are_stored_up_to_the_budget_and_the_rest_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = "52:54:00:00:00:01"
    clock = [1000.0]
    seen: list[Event] = []
    with Store.open(tmp_path) as store:
        hub = EventHub(store, known={node}.__contains__, clock=lambda: clock[0])
        hub.subscribers.append(seen.append)
        budget = int(hub.STRANGER_EVENTS_PER_SECOND * 0.2)  # per flush of the default interval
        for i in range(budget + 300):
            hub.publish(DhcpEvent("ack", f"02:00:00:00:{i >> 8:02x}:{i & 255:02x}", 0.0, xid=i))
            if i % 100 == 0:  # the rack's own machines and racker's own events: always stored
                hub.publish(DhcpEvent("ack", node, 0.0, xid=100_000 + i))
                hub.publish(NodeStateEvent("state", node, 0.0, old="a", new="b"))
        hub.publish(HttpEvent("request", None, 0.0, path="/boot.ipxe"))  # no MAC: a stranger
        with caplog.at_level(logging.WARNING, logger="racker.serve"):
            hub.flush()
        assert len(seen) == budget + 301 + 2 * ((budget + 299) // 100 + 1)
        stored = store.events(limit=10_000)
        strangers = [e for e in stored if e["source"] in ("dhcp", "http") and e["mac"] != node]
        assert len(strangers) == budget
        assert [e["xid"] for e in strangers] == list(range(budget))  # the first ones, in order
        nodes = [e for e in stored if e["mac"] == node]
        assert len(nodes) == 2 * ((budget + 299) // 100 + 1)
        (overflow,) = [e for e in stored if e["kind"] == "event-log-overflow"]
        assert overflow["left_out"] == 301
        assert overflow["limit"] == hub.STRANGER_EVENTS_PER_SECOND
        assert "301 events of clients outside nodes.csv not stored or logged" in caplog.text

        # The budget is per flush; the warning at most once a minute, counting all left out.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="racker.serve"):
            for i in range(budget + 5):
                hub.publish(DhcpEvent("offer", "02:00:00:00:00:01", 0.0, xid=i))
            hub.flush()
            assert caplog.text == ""
            clock[0] += hub.OVERFLOW_WARNING_INTERVAL
            hub.flush()  # nothing left out in this interval, but 5 since the last warning
        assert "5 events of clients outside nodes.csv not stored or logged" in caplog.text
        overflows = [e for e in store.events(limit=10_000) if e["kind"] == "event-log-overflow"]
        assert [e["left_out"] for e in overflows] == [301, 5]


def test_without_a_directory_every_boot_server_event_counts_against_the_budget(
    tmp_path: Path,
) -> None:
    with Store.open(tmp_path) as store:
        hub = EventHub(store, flush_interval=0.01)  # 10 strangers' events per flush
        for i in range(15):
            hub.publish(DhcpEvent("ack", "52:54:00:00:00:01", 0.0, xid=i))
        hub.flush()
        assert [e["kind"] for e in store.events()] == ["ack"] * 10 + ["event-log-overflow"]


def test_the_budget_bounds_the_dhcp_log_lines_of_strangers_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = "52:54:00:00:00:01"
    hub = EventHub(None, known={node}.__contains__, flush_interval=0.01)  # 10 per flush
    seen: list[Event] = []
    hub.subscribers.append(seen.append)
    with caplog.at_level(logging.INFO, logger="racker.dhcp"):
        for i in range(25):
            for mac in (f"02:00:00:00:00:{i:02x}", node):
                hub.publish(
                    DhcpEvent(
                        "ack", mac, 0.0, xid=i, message="ACK", direction="out", address="10.0.0.9"
                    )
                )
    lines = [r.getMessage() for r in caplog.records if r.name == "racker.dhcp"]
    assert len([line for line in lines if node in line]) == 25  # every one of the node's
    assert len([line for line in lines if "02:00:00:00:00:" in line]) == 10  # the budget
    assert len(seen) == 50  # subscribers see everything


def test_keeps_says_whether_events_would_be_stored_and_counts_those_it_turns_away(
    tmp_path: Path,
) -> None:
    node, stranger = "52:54:00:00:00:01", "02:00:00:00:00:09"
    with Store.open(tmp_path) as store:
        hub = EventHub(store, known={node}.__contains__)
        budget = int(hub.STRANGER_EVENTS_PER_SECOND * 0.2)
        for i in range(budget):
            assert hub.keeps(stranger, 2)  # within the budget: build and publish them
            hub.publish(DhcpEvent("ack", stranger, 0.0, xid=i))
        assert not hub.keeps(stranger, 2)  # spent: not built, counted here
        assert not hub.keeps(stranger, 1)
        assert hub.keeps(node, 2)  # the rack's machines: always
        hub.subscribers.append(lambda _event: None)
        assert hub.keeps(stranger, 2)  # a subscriber sees every event
        hub.flush()
        (overflow,) = [e for e in store.events(limit=10_000) if e["kind"] == "event-log-overflow"]
        assert overflow["left_out"] == 3
        assert hub.keeps(stranger, 2)  # a new flush interval, a new budget


async def test_with_a_writer_flush_never_waits_for_the_disk_and_close_stores_everything(
    tmp_path: Path,
) -> None:
    Store.open(tmp_path).close()
    writer = StoreWriter(tmp_path / "racker.db", commit_delay=0.3)  # a slow disk
    writer.start()
    try:
        hub = EventHub(Store.open(tmp_path), writer=writer)
        for batch in range(3):
            hub.publish(DhcpEvent("ack", "m", 0.0, xid=batch))
            started = time.monotonic()
            hub.flush()  # the first batch goes to the writer; the others wait behind it
            assert time.monotonic() - started < 0.1
        assert hub._pending and [e.xid for e in hub._pending] == [1, 2]  # type: ignore[attr-defined]
        await hub.close()
        with Store.open(tmp_path) as reader:
            assert [e["xid"] for e in reader.events()] == [0, 1, 2]
    finally:
        writer.close()
