"""The rack page with 200 nodes in headless Chromium: rendered once, then one row per change.

No root needed: the page's routes (as ``racker serve`` mounts them) run on 127.0.0.1 over a
real store and hub; the browser's calls run in a thread so the server's loop keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from racker.app.hub import EventHub, subscribe
from racker.events import DhcpEvent, NodeStateEvent
from racker.model import NodeState
from racker.store import Store
from racker.web.metrics import HttpMetrics
from racker.web.page.feed import RackFeed
from racker.web.page.routes import add_page_routes
from tests.support import chromium
from tests.unit.web.test_rack_page_view import nodes

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not chromium.available(), reason="chromium is not installed"),
]

BUSY = "52:54:00:00:00:07"
MOVED = "52:54:00:00:00:09"


def row(mac: str) -> str:
    return f"document.querySelector('tr[data-mac=\"{mac}\"]')"


async def test_200_nodes_render_once_and_a_change_updates_only_its_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "racker.db")
    hub = EventHub(None)
    feed = RackFeed(store.path, lambda: nodes(200), lambda: subscribe(hub))
    app = web.Application()
    add_page_routes(app, feed, HttpMetrics().registry)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        with chromium.Chromium(tmp_path / "chromium") as browser:

            async def run(expression: str) -> Any:
                return await asyncio.to_thread(browser.evaluate, expression)

            await asyncio.to_thread(browser.navigate, str(server.make_url("/")))
            await asyncio.to_thread(
                browser.wait_for, "document.querySelectorAll('#rows tr').length === 200"
            )
            assert await run("window.rackStats.rowsBuilt") == 200
            await run("document.querySelectorAll('#rows tr').forEach(tr => { tr.kept = 1 })")
            before = await run("window.rackStats.rowUpdates")

            for i in range(500):  # a burst of one node's DHCP: one row, not 500 updates
                hub.publish(DhcpEvent("request", BUSY, time.time() + i, message="DISCOVER"))
            store.set_node_state(NodeState(MOVED, "installing", time.time()))
            store.append_events(
                [NodeStateEvent("transition", MOVED, time.time(), old="", new="installing")]
            )
            await asyncio.to_thread(
                browser.wait_for,
                f"{row(MOVED)}.dataset.state === 'installing'"
                f" && {row(BUSY)}.textContent.includes('DISCOVER')",
            )
            stats = await run("window.rackStats")
            assert isinstance(stats, dict)
            assert stats["snapshots"] == 1 and stats["rowsBuilt"] == 200  # no re-render
            # Every row element is the one first built: only the changed rows were touched.
            kept = "Array.from(document.querySelectorAll('#rows tr')).every(tr => tr.kept === 1)"
            assert await run(kept) is True
            updates = int(str(stats["rowUpdates"])) - int(str(before))
            assert 2 <= updates < 10, stats  # the two rows, in the few deltas that carried them
            shot = await asyncio.to_thread(browser.screenshot, tmp_path / "rack-200.png", False)
            print(f"rack page screenshot (200 nodes): {shot}")
    finally:
        await server.close()
        store.close()
