"""The rack page's bounded queues: the hub's subscriptions and each browser's stream."""

from __future__ import annotations

import pytest

from racker.app.hub import MAX_STREAMS, EventHub, TooManySubscribers, subscribe
from racker.events import DhcpEvent
from racker.web.stream import StreamClient, sse

MAC = "52:54:00:00:00:01"


def discover(i: int = 0) -> DhcpEvent:
    return DhcpEvent("request", MAC, float(i), message="DISCOVER")


async def test_a_subscription_gets_the_hub_s_events_in_order() -> None:
    hub = EventHub(None)
    stream = subscribe(hub)
    hub.publish(discover(1))
    hub.publish(discover(2))
    events, overflowed = await stream.get()
    assert [e.ts for e in events] == [1.0, 2.0]
    assert not overflowed
    stream.close()
    assert hub.streams == []


async def test_a_subscription_that_falls_behind_is_emptied_and_told() -> None:
    hub = EventHub(None)
    stream = subscribe(hub, limit=3)
    for i in range(10):
        hub.publish(discover(i))
    events, overflowed = await stream.get()
    assert overflowed
    assert len(events) <= 3
    hub.publish(discover(11))
    events, overflowed = await stream.get()
    assert [e.ts for e in events] == [11.0] and not overflowed


def test_subscriptions_are_bounded() -> None:
    hub = EventHub(None)
    streams = [subscribe(hub) for _ in range(MAX_STREAMS)]
    with pytest.raises(TooManySubscribers):
        subscribe(hub)
    streams[0].close()
    subscribe(hub)


def test_a_subscription_does_not_make_the_hub_keep_strangers_events() -> None:
    # The DHCP hot path skips building strangers' events past the budget; the page must not
    # change that (a subscriber callable does: it sees everything).
    hub = EventHub(None, known=lambda mac: False)
    hub._budget = 0
    subscribe(hub)
    assert not hub.keeps("02:00:00:00:00:01", 4)
    hub.subscribers.append(lambda event: None)
    assert hub.keeps("02:00:00:00:00:01", 4)


async def test_a_browser_that_reads_too_slowly_gets_a_snapshot_instead() -> None:
    client = StreamClient(limit=4)
    client.resync = False  # it had its first snapshot
    for i in range(4):
        client.send("delta", {"i": i})
    assert len(client.queue) == 4 and not client.resync
    client.send("delta", {"i": 4})
    assert client.resync and not client.queue


def test_an_sse_message_is_one_data_line() -> None:
    text = sse("delta", {"nodes": [{"last_event": "a\nb"}]}).decode()
    assert text.startswith("event: delta\ndata: ")
    assert text.endswith("\n\n") and text.count("\n") == 3


def test_of_a_node_s_routine_traffic_in_a_batch_only_the_newest_is_shown() -> None:
    from racker.events import BmcEvent, TftpEvent
    from racker.web.page.feed import RackFeed
    from tests.unit.web.test_rack_page_view import nodes

    feed = RackFeed(None, lambda: nodes(2))
    stranger = "02:00:00:00:00:09"
    batch = [
        discover(1),
        BmcEvent("command", MAC, 2.0, action="power-on"),
        TftpEvent("transfer-finished", MAC, 3.0, file="undionly.kpxe", bytes=100),
        DhcpEvent("request", stranger, 4.0, message="DISCOVER"),
        DhcpEvent("request", stranger, 5.0, message="DECLINE", address="10.99.0.9"),
        discover(6),
    ]
    shown = feed._shown(batch)
    assert [e.ts for e in shown] == [2.0, 5.0, 6.0]  # BMC, the decline, the newest of MAC's
    for event in shown:
        feed.view.apply({"source": event.source, **vars(event)})
    assert feed.view.counts["dhcp DISCOVER received"] == 3  # every one counted
    assert feed.view.counts["tftp bytes sent"] == 100
    assert feed.view.rows[MAC]["last_event"] == "DHCP ← DISCOVER"
