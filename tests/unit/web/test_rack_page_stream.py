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
