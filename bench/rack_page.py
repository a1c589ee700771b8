"""Benchmark: what the rack page costs the event hub, and what one browser gets under a flood.

    .venv/bin/python bench/rack_page.py [--rounds 5] [--events 200000] [--nodes 200]
                                        [--sse-runs 3] [--sse-rate 20000] [--sse-seconds 5]

publish: the cost the page adds to ``EventHub.publish`` (the path every DHCP, TFTP and HTTP
event takes). There is no reference tool for a rack page, so the peer is racker without the
page (no subscription) and racker is racker with it (``RackFeed`` started: a bounded hub
subscription whose pump applies the events to the view, as in ``racker serve``). In-process,
asyncio loop, an inventory of --nodes nodes (the tests' rows). --events ``DhcpEvent``s are
published in batches of 1000, with ``await asyncio.sleep(0)`` after each batch so the page's
pump runs and its time is counted; ns per event = wall time / events. Two cases: "nodes",
events of the inventory's nodes (round-robin), and "strangers", 1000 MACs outside the
inventory (only counted by the page). Rounds alternate with and without the page (the order
alternating per round).

sse: one aiohttp client on /api/v1/stream while ~--sse-rate events/s of the inventory's nodes
are published for --sse-seconds (--sse-runs runs): Server-Sent Events messages/s and KiB/s the
browser receives (the page coalesces to its 250 ms tick whatever the event rate).

Prints markdown tables and one line per metric:
``SUMMARY rack_page.publish_ns@CASE racker=... nopage=... ratio=... spread=... rounds=...``
(medians; ratio: median of the per-round ratios with/without; spread: their min-max), and for
the SSE metrics, which have no peer, ``none=nan ratio=nan`` and spread = the min-max of
racker's values. A default run takes well under a minute. Run it under the shared lock:
``flock /tmp/racker-bench.lock .venv/bin/python bench/rack_page.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# In place of this script's directory: bench/http.py would shadow the standard library's http
# package, which aiohttp imports.
sys.path[:1] = [str(REPO), str(REPO / "src")]

from aiohttp import ClientSession, web  # noqa: E402
from aiohttp.test_utils import TestServer  # noqa: E402
from tests.unit.web.test_rack_page_view import nodes  # noqa: E402

from racker.app.hub import EventHub, subscribe  # noqa: E402
from racker.events import DhcpEvent  # noqa: E402
from racker.store import Store  # noqa: E402
from racker.web.metrics import HttpMetrics  # noqa: E402
from racker.web.page.feed import RackFeed  # noqa: E402
from racker.web.page.routes import add_page_routes  # noqa: E402

BATCH = 1000


class Rack:
    """The inventory's rows and the events of its nodes and of strangers."""

    def __init__(self, count: int) -> None:
        self.rows = nodes(count)
        macs = [r["primary_mac"] for r in self.rows]
        self.known = set(macs) | {r["bmc_mac"] for r in self.rows}
        self.nodes = [
            DhcpEvent("request", macs[i % count], float(i), message="DISCOVER", address="10.0.0.1")
            for i in range(BATCH)
        ]
        self.strangers = [
            DhcpEvent(
                "request",
                f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
                float(i),
                message="DISCOVER",
            )
            for i in range(BATCH)
        ]

    def feed(self, store: Store, hub: EventHub) -> RackFeed:
        return RackFeed(store.path, lambda: self.rows, lambda: subscribe(hub))


async def publish_cost(rack: Rack, with_page: bool, events: Sequence[Any], total: int) -> float:
    """ns per published event, with or without the page's subscription."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "r.db")
        hub = EventHub(None, known=rack.known.__contains__)
        feed = None
        if with_page:
            feed = rack.feed(store, hub)
            await feed.start()
        start = time.perf_counter()
        for _ in range(total // BATCH):
            for event in events:
                hub.publish(event)
            await asyncio.sleep(0)  # the page's pump runs here (its cost is counted)
        await asyncio.sleep(0)
        elapsed = time.perf_counter() - start
        if feed is not None:
            await feed.close()
        store.close()
        return elapsed / (total // BATCH * BATCH) * 1e9


async def sse_rate(rack: Rack, rate: int, seconds: float) -> tuple[float, float, float]:
    """(events/s published, SSE messages/s, KiB/s) seen by one client of /api/v1/stream."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "r.db")
        hub = EventHub(None, known=rack.known.__contains__)
        app = web.Application()
        add_page_routes(app, rack.feed(store, hub), HttpMetrics().registry)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        msgs = nbytes = 0
        try:
            async with (
                ClientSession() as session,
                session.get(server.make_url("/api/v1/stream")) as resp,
            ):

                async def read() -> None:
                    nonlocal msgs, nbytes
                    async for line in resp.content:
                        nbytes += len(line)
                        if line.startswith(b"event: "):
                            msgs += 1

                reader = asyncio.create_task(read())
                await asyncio.sleep(0.5)  # the first snapshot is not counted
                msgs0, bytes0 = msgs, nbytes
                t0 = time.perf_counter()
                sent = 0
                while time.perf_counter() - t0 < seconds:
                    for _ in range(rate // 20):
                        hub.publish(rack.nodes[sent % BATCH])
                        sent += 1
                    await asyncio.sleep(0.05)
                took = time.perf_counter() - t0
                await asyncio.sleep(0.5)  # the last tick's delta arrives
                reader.cancel()
        finally:
            await server.close()
            store.close()
        return sent / took, (msgs - msgs0) / took, (nbytes - bytes0) / took / 1024


def span(values: Sequence[float], fmt: str) -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--sse-runs", type=int, default=3)
    parser.add_argument("--sse-rate", type=int, default=20_000)
    parser.add_argument("--sse-seconds", type=float, default=5.0)
    args = parser.parse_args()
    if args.events < BATCH or args.rounds < 1 or not 1 <= args.nodes <= 255:
        parser.error(f"--events >= {BATCH}, --rounds >= 1, --nodes 1-255")
    rack = Rack(args.nodes)
    lines = []
    print(f"### hub.publish ns/event, {args.nodes}-node inventory, {args.rounds} rounds\n")
    print("| case | with page (racker) | without page (peer) | ratio | ratio spread |")
    print("|---|---|---|---|---|")
    for case, events in (("nodes", rack.nodes), ("strangers", rack.strangers)):
        without: list[float] = []
        withp: list[float] = []
        for r in range(args.rounds):
            for page in (False, True) if r % 2 == 0 else (True, False):
                ns = await publish_cost(rack, page, events, args.events)
                (withp if page else without).append(ns)
        ratios = [b / a for a, b in zip(without, withp, strict=True)]
        ratio, mine, peer = (statistics.median(v) for v in (ratios, withp, without))
        print(
            f"| {case} | {mine:.0f} ({span(withp, '{:.0f}')}) | {peer:.0f}"
            f" ({span(without, '{:.0f}')}) | {ratio:.2f} | {span(ratios, '{:.2f}')} |"
        )
        lines.append(
            f"SUMMARY rack_page.publish_ns@{case} racker={mine:.0f} nopage={peer:.0f}"
            f" ratio={ratio:.2f} spread={span(ratios, '{:.2f}')} rounds={len(ratios)}"
        )
    if args.sse_runs > 0:
        runs = [await sse_rate(rack, args.sse_rate, args.sse_seconds) for _ in range(args.sse_runs)]
        print("\n### SSE to one browser\n")
        print("| run | events/s published | messages/s | KiB/s |")
        print("|---|---|---|---|")
        for i, (rate, msgs, kib) in enumerate(runs, 1):
            print(f"| {i} | {rate:.0f} | {msgs:.2f} | {kib:.1f} |")
        for name, column, fmt in (
            ("sse_messages_per_s", 1, "{:.2f}"),
            ("sse_kib_per_s", 2, "{:.1f}"),
        ):
            values = [r[column] for r in runs]
            value = fmt.format(statistics.median(values))
            lines.append(
                f"SUMMARY rack_page.{name}@{args.sse_rate} racker={value}"
                f" none=nan ratio=nan spread={span(values, fmt)} rounds={len(values)}"
            )
    print()
    for line in lines:
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
