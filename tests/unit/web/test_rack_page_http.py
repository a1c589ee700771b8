"""The rack page's routes under aiohttp's test client: a real store, a real hub, 200 nodes."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from racker.app.hub import MAX_STREAMS, EventHub, subscribe
from racker.events import DhcpEvent, HttpEvent, NodeStateEvent
from racker.model import NodeState
from racker.store import Store
from racker.web.page import reading
from racker.web.page.feed import RackFeed
from racker.web.page.reading import TIMELINE_EVENTS
from tests.unit.web.helpers import web_client
from tests.unit.web.test_rack_page_view import TOKEN, nodes

PRIMARY = "52:54:00:00:00:01"
WAIT = 10.0  # a hang guard only: a stream message that never comes fails the test


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "racker.db")


class Page:
    def __init__(self, client: TestClient[Any, Any], feed: RackFeed, hub: EventHub) -> None:
        self.client, self.feed, self.hub = client, feed, hub


async def open_page(tmp_path: Path, store: Store, limit: int = 10_000) -> AsyncIterator[Page]:
    hub = EventHub(None)
    feed = RackFeed(store.path, lambda: nodes(200), lambda: subscribe(hub, limit))
    feed.POLL = feed.TICK = 0.02
    async with web_client(tmp_path, page=feed) as client:
        yield Page(client, feed, hub)


@pytest.fixture
async def page(tmp_path: Path, store: Store) -> AsyncIterator[Page]:
    async for made in open_page(tmp_path, store):
        yield made


async def message(stream: ClientResponse) -> tuple[str, Any]:
    """The next SSE message (event name, parsed data); comments and retry lines skipped."""

    async def read() -> tuple[str, Any]:
        name, data = "message", ""
        while True:
            line = (await stream.content.readline()).decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                return name, json.loads(data)

    return await asyncio.wait_for(read(), WAIT)


async def test_the_page_is_served_with_everything_from_racker(page: Page) -> None:
    resp = await page.client.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert '<script src="/ui/rack.js"' in html and 'href="/ui/rack.css"' in html
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for name, kind in (("rack.js", "text/javascript"), ("rack.css", "text/css")):
        got = await page.client.get(f"/ui/{name}")
        assert got.status == 200 and got.content_type == kind
    # Nothing from elsewhere: no URL with a host in any of the page's files (offline racks).
    for name in ("index.html", "rack.js", "rack.css"):
        text = (resources.files("racker.web") / "static" / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), name
        assert "@import" not in text and "url(" not in text


async def test_the_json_snapshot_has_every_node_of_a_200_node_rack(
    page: Page, store: Store
) -> None:
    store.set_node_state(NodeState(PRIMARY, "installing", 50.0, 1, "", {"role": "worker"}))
    resp = await page.client.get("/api/v1/rack")
    assert resp.status == 200
    data = await resp.json()
    assert len(data["nodes"]) == 200
    assert set(data["warnings"]) == {"rogue-dhcp", "decline", "bmc-error", "failed"}
    assert set(data["counters"]) == {"dhcp", "tftp", "http"}
    # The page's feed started before the state was written: it is read within a poll.
    for _ in range(500):
        rows = {
            r["primary_mac"]: r
            for r in (await (await page.client.get("/api/v1/rack")).json())["nodes"]
        }
        if rows[PRIMARY]["state"] == "installing":
            break
        await asyncio.sleep(0.02)
    assert rows[PRIMARY]["state"] == "installing" and rows[PRIMARY]["role"] == "worker"


async def test_a_state_change_in_the_store_streams_as_a_delta_of_its_row(
    page: Page, store: Store
) -> None:
    async with page.client.get("/api/v1/stream") as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        name, snap = await message(stream)
        assert name == "snapshot" and len(snap["nodes"]) == 200
        # racker bootstrap (another process) writes the state and its event to the store.
        store.set_node_state(NodeState(PRIMARY, "dhcp-seen", 60.0))
        event = NodeStateEvent(
            "transition", PRIMARY, 60.0, node="worker-000001", old="power-cycled", new="dhcp-seen"
        )
        store.append_events([event])
        rows = await delta_rows_until(stream, lambda row: row["state"] == "dhcp-seen")
        assert [r["primary_mac"] for r in rows] == [PRIMARY]


async def delta_rows_until(stream: ClientResponse, done: Any) -> list[dict[str, Any]]:
    while True:
        name, data = await message(stream)
        rows = [r for r in data.get("nodes", []) if done(r)] if name == "delta" else []
        if rows:
            return list(data["nodes"])


async def test_hub_events_stream_coalesced_into_one_delta(page: Page) -> None:
    async with page.client.get("/api/v1/stream") as stream:
        await message(stream)  # the snapshot
        for i in range(2000):  # a burst: one row changed, one message
            page.hub.publish(DhcpEvent("request", PRIMARY, 70.0 + i, message="DISCOVER"))
        rows = await delta_rows_until(stream, lambda row: row["last_event"] == "DHCP ← DISCOVER")
        assert [r["primary_mac"] for r in rows] == [PRIMARY]
        assert rows[0]["power"] == "on"


async def test_a_subscription_that_overflows_sends_every_browser_a_snapshot(
    tmp_path: Path, store: Store
) -> None:
    async for page in open_page(tmp_path, store, limit=5):
        async with page.client.get("/api/v1/stream") as stream:
            assert (await message(stream))[0] == "snapshot"
            for i in range(50):  # more than the subscription holds, before the page reads
                page.hub.publish(DhcpEvent("request", PRIMARY, float(i), message="DISCOVER"))
            while (await message(stream))[0] != "snapshot":
                pass


async def test_the_timeline_is_a_node_s_newest_events_without_tokens(
    page: Page, store: Store
) -> None:
    store.append_events(
        [
            HttpEvent("request", PRIMARY, float(i), path=f"/ignition?mac=x&token={TOKEN}")
            for i in range(TIMELINE_EVENTS + 50)
        ]
        + [HttpEvent("request", "52:54:00:00:00:02", 1.0, path="/other")]
    )
    resp = await page.client.get(f"/api/v1/nodes/{PRIMARY.replace(':', '-')}/events")
    assert resp.status == 200
    data = await resp.json()
    assert data["mac"] == PRIMARY
    assert len(data["events"]) == TIMELINE_EVENTS
    assert data["events"][-1]["ts"] == float(TIMELINE_EVENTS + 49)  # the newest, oldest first
    assert TOKEN not in await resp.text()
    assert all("/other" not in e["path"] for e in data["events"])


@pytest.mark.parametrize("mac", ["52:54:00:00:09:99", "not-a-mac"])
async def test_the_timeline_of_an_unknown_node_is_404(page: Page, mac: str) -> None:
    assert (await page.client.get(f"/api/v1/nodes/{mac}/events")).status == 404


async def test_streams_are_bounded(page: Page) -> None:
    page.feed.streams.max_clients = 1
    async with page.client.get("/api/v1/stream") as first:
        await message(first)
        second = await page.client.get("/api/v1/stream")
        assert second.status == 503
        assert "Retry-After" in second.headers


async def test_the_page_never_writes_the_store(page: Page, store: Store) -> None:
    before = store.last_event_id()
    await page.client.get("/api/v1/rack")
    await page.client.get(f"/api/v1/nodes/{PRIMARY}/events")
    assert store.last_event_id() == before


async def test_strangers_dhcp_is_counted_but_shows_in_no_row(page: Page) -> None:
    stranger = "02:00:00:00:00:99"
    for _ in range(30):
        page.hub.publish(DhcpEvent("request", stranger, 1.0, message="DISCOVER"))
    page.hub.publish(
        DhcpEvent("decline", stranger, time.time(), message="DECLINE", address="10.99.0.9")
    )
    for _ in range(500):
        data = await (await page.client.get("/api/v1/rack")).json()
        if data["counters"]["dhcp"].get("DISCOVER received") == 30:
            break
        await asyncio.sleep(0.02)
    assert data["counters"]["dhcp"]["DISCOVER received"] == 30
    assert data["counters"]["dhcp"]["DECLINE received"] == 1
    assert [w["key"] for w in data["warnings"]["decline"]] == ["10.99.0.9"]
    assert all(r["last_event"] is None for r in data["nodes"])


async def test_without_a_subscription_the_page_still_follows_the_store(
    tmp_path: Path, store: Store
) -> None:
    hub = EventHub(None)
    taken = [subscribe(hub) for _ in range(MAX_STREAMS)]
    feed = RackFeed(store.path, lambda: nodes(3), lambda: subscribe(hub))
    feed.POLL = feed.TICK = 0.02
    async with web_client(tmp_path, page=feed) as client:
        store.set_node_state(NodeState(PRIMARY, "ready", 1.0))
        for _ in range(500):
            rows = (await (await client.get("/api/v1/rack")).json())["nodes"]
            if rows[0]["state"] == "ready":
                break
            await asyncio.sleep(0.02)
        assert rows[0]["state"] == "ready"
    assert len(hub.streams) == len(taken)


async def test_a_reload_that_changes_the_inventory_sends_a_snapshot(
    tmp_path: Path, store: Store
) -> None:
    inventory = nodes(3)
    feed = RackFeed(store.path, lambda: inventory)
    feed.POLL = feed.TICK = 0.02
    async with web_client(tmp_path, page=feed) as client, client.get("/api/v1/stream") as stream:
        name, first = await message(stream)
        assert name == "snapshot" and len(first["nodes"]) == 3
        inventory = nodes(2)  # SIGHUP: a row left nodes.csv
        while True:
            name, data = await message(stream)
            if name == "snapshot":
                break
        assert [r["hostname"] for r in data["nodes"]] == ["worker-000001", "worker-000002"]


async def test_timeline_reads_take_at_most_two_threads(
    page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twelve timeline requests at once, each read held: two reads run, the rest wait their
    # turn instead of taking every thread of the default executor (the assets' too).
    release, running, most = threading.Event(), [0], [0]
    lock = threading.Lock()
    original = reading.timeline

    def held(*args: Any) -> list[dict[str, Any]]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(WAIT)
        with lock:
            running[0] -= 1
        return original(*args)

    monkeypatch.setattr(reading, "timeline", held)
    asks = [
        asyncio.ensure_future(page.client.get(f"/api/v1/nodes/{PRIMARY}/events")) for _ in range(12)
    ]
    for _ in range(500):  # the first two reads start
        if most[0] >= RackFeed.TIMELINE_READS:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)  # time for more to start, were they allowed to
    assert most[0] == RackFeed.TIMELINE_READS
    release.set()
    assert [(await ask).status for ask in asks] == [200] * 12


async def test_a_stream_that_reads_nothing_is_cut_off_and_its_place_freed(page: Page) -> None:
    # A client opens the stream and never reads: once its socket buffers are full, a write
    # that takes no byte for write_timeout ends the stream and frees the browser's place.
    streams = page.feed.streams
    streams.max_clients, streams.write_timeout = 1, 0.2
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (page.client.server.host, page.client.server.port))
    await loop.sock_sendall(sock, b"GET /api/v1/stream HTTP/1.1\r\nHost: racker\r\n\r\n")
    try:
        for _ in range(int(WAIT / 0.01)):  # snapshots of 200 rows until it is cut off
            if streams.cut_off:
                break
            streams.resynchronise()
            await asyncio.sleep(0.01)
        assert streams.cut_off == 1
        assert not streams.clients
        async with page.client.get("/api/v1/stream") as stream:  # the place is free
            assert stream.status == 200
            assert (await message(stream))[0] == "snapshot"
    finally:
        sock.close()
