"""RackFeed: keeps the rack page's ``RackView`` current and streams its changes to browsers.

Three tasks, all on the event loop, none doing disk I/O there:

- *pump*: the hub's events (this process's DHCP, TFTP, HTTP, BMC) from a bounded
  subscription; when it overflowed (a flood outran the page), the view is rebuilt from the
  store and every browser gets a fresh snapshot;
- *poll*: every ``POLL`` seconds, the store's node states and the node-state changes another
  process (``racker bootstrap``) wrote, read in a thread with its own read-only connection;
- *tick*: every ``TICK`` seconds at most one message per browser with the rows that changed,
  the warnings if they changed and the counters if they moved; a burst of thousands of events
  is one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry

from racker.events import Event
from racker.web.page import reading
from racker.web.page.view import WARNING_AGE, RackView, timeline_entry
from racker.web.stream import Streams

log = logging.getLogger("racker.http")


class EventSource(Protocol):
    """A bounded subscription to the event hub (``racker.app.hub.Subscription``)."""

    async def get(self) -> tuple[list[Event], bool]: ...

    def close(self) -> None: ...


NodeRows = Callable[[], list[dict[str, Any]]]
# Events of clients outside the inventory that the page shows (warnings), not only counts.
WARNED_KINDS = frozenset({"rogue-dhcp", "decline"})
WARNED_MESSAGES = frozenset({"DECLINE"})
ROUTINE_SOURCES = frozenset({"dhcp", "tftp", "http"})


def as_dict(event: Event) -> dict[str, Any]:
    """``event.to_dict()`` without its per-field walk (the view reads, never serialises it)."""
    try:
        return {"source": event.source, **vars(event)}
    except TypeError:  # an event class with __slots__
        return event.to_dict()


class RackFeed:
    POLL = 0.5
    TICK = 0.25
    # Timeline reads at once. They run on the default executor's few threads (6 on 2 cores),
    # which the HTTP assets' path resolution and the reloads use too: a client asking for
    # timelines in a loop must not take them all. Further requests wait their turn.
    TIMELINE_READS = 2

    def __init__(
        self,
        store_path: Path | None,
        nodes: NodeRows,
        subscribe: Callable[[], EventSource] | None = None,
    ) -> None:
        self.store_path = store_path
        self.nodes = nodes
        self._subscribe = subscribe
        self._node_rows = nodes()
        self.view = RackView(self._node_rows)
        self.streams = Streams(self.snapshot)
        self.registry: CollectorRegistry | None = None  # set by the app: the /metrics registry
        self._last_id = 0
        self._counters: dict[str, dict[str, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._source: EventSource | None = None
        self._timeline_reads = asyncio.Semaphore(self.TIMELINE_READS)

    # -- lifecycle (the HTTP app's startup and shutdown) -----------------------------------

    async def start(self) -> None:
        await self._seed()
        self.view.expire(time.time() - WARNING_AGE)
        self.view.take_delta()  # no browser yet: the first ones get snapshots
        if self._subscribe is not None:
            try:
                self._source = self._subscribe()
            except RuntimeError as exc:  # the hub's subscriptions are all taken
                log.warning("rack page: no live events (%s); the store's are read", exc)
            else:
                self._tasks.append(asyncio.create_task(self._pump()))
        self._tasks.append(asyncio.create_task(self._poll()))
        self._tasks.append(asyncio.create_task(self._tick()))

    async def close(self) -> None:
        self.streams.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._source is not None:
            self._source.close()
            self._source = None

    # -- what the page reads ---------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        self._counters = self.counters()
        return {**self.view.snapshot(), "counters": self._counters}

    def counters(self) -> dict[str, dict[str, float]]:
        """DHCP, TFTP and HTTP figures: the /metrics registry's, and the events seen."""
        out: dict[str, dict[str, float]] = {"dhcp": {}, "tftp": {}, "http": {}}
        for name, count in self.view.counts.items():
            service, _, what = name.partition(" ")
            if service in out:
                out[service][what] = float(count)
        if self.registry is not None:
            for name, value in registry_figures(self.registry):
                service = name.split("_")[1]
                if service in out:
                    out[service][name] = value
        return {k: dict(sorted(v.items())) for k, v in out.items()}

    def macs_of(self, mac: str) -> list[str] | None:
        row = self.view.rows.get(mac)
        if row is None:
            return None
        macs = (row.get("primary_mac"), row.get("bmc_mac"), row.get("secondary_mac"))
        return [str(m) for m in macs if m]

    async def timeline(self, mac: str) -> list[dict[str, Any]] | None:
        macs = self.macs_of(mac)
        if macs is None or self.store_path is None:
            return None if macs is None else []
        async with self._timeline_reads:
            events = await asyncio.to_thread(reading.timeline, self.store_path, macs)
        return [timeline_entry(e) for e in events]

    # -- the tasks -------------------------------------------------------------------------

    async def _seed(self) -> None:
        if self.store_path is None:
            return
        try:
            found = await asyncio.to_thread(reading.seed, self.store_path)
        except Exception as exc:  # the page still shows the inventory
            log.warning("rack page: cannot read the store: %s", exc)
            return
        self.view.set_nodes(self._node_rows)
        self._apply_store(found)

    def _apply_store(self, found: dict[str, Any]) -> None:
        self._apply(found["events"], count=False)
        self.view.set_states(found["states"])
        self.view.set_protocols(found["protocols"])
        self._last_id = max(self._last_id, int(found["last_id"]))

    def _apply(self, events: Iterable[dict[str, Any]], count: bool = True) -> None:
        for event in events:
            try:
                self.view.apply(event, count)
            except Exception:  # one odd event (a newer racker's) must not stop the page
                log.exception("rack page: cannot show event %s", event.get("kind"))

    async def _pump(self) -> None:
        assert self._source is not None
        while True:
            events, overflowed = await self._source.get()
            if overflowed:
                log.info("rack page: events came faster than it reads; rebuilding from the store")
                await self._seed()
                self.streams.resynchronise()
                continue
            self._apply(as_dict(event) for event in self._shown(events))

    def _shown(self, events: list[Event]) -> list[Event]:
        """The events of a batch the page shows more of than a count, oldest first; the rest
        are only counted. Of a node's routine traffic (DHCP, TFTP, HTTP) only the newest of the
        batch is shown: it alone can be the row's last event (a booting rack's thousands of
        exchanges cost a count each)."""
        shown: list[Event] = []
        routine: set[str] = set()
        for event in reversed(events):
            mac, message = event.mac, getattr(event, "message", "")
            if event.kind in WARNED_KINDS or message in WARNED_MESSAGES:
                shown.append(event)
            elif mac is not None and self.view.concerns(mac):
                if event.source not in ROUTINE_SOURCES:
                    shown.append(event)
                elif mac not in routine:
                    routine.add(mac)
                    shown.append(event)
                else:
                    self._count(event, message)
            elif mac is None:
                shown.append(event)
            else:
                self._count(event, message)
        shown.reverse()
        return shown

    def _count(self, event: Event, message: str) -> None:
        get = functools.partial(getattr, event)
        self.view.count(event.source, event.kind, message, get("direction", "in"), get("bytes", 0))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.POLL)
            rows = self.nodes()
            if rows != self._node_rows:  # a reload changed the inventory
                self._node_rows = rows
                self.view.set_nodes(rows)
                self.streams.resynchronise()  # deltas carry only the columns that change
            if self.store_path is None:
                continue
            try:
                found = await asyncio.to_thread(reading.poll, self.store_path, self._last_id)
            except Exception as exc:
                log.warning("rack page: cannot read the store: %s", exc)
                await asyncio.sleep(5 * self.POLL)
                continue
            self._apply_store(found)
            self.view.expire(time.time() - WARNING_AGE)

    async def _tick(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(self.TICK)
            ticks += 1
            if not self.streams.clients:
                self.view.take_delta()  # nobody to tell; the next browser gets a snapshot
                continue
            delta = self.view.take_delta() or {}
            if ticks % 4 == 0:  # counters once a second
                counters = self.counters()
                if counters != self._counters:
                    delta["counters"] = self._counters = counters
            if delta:
                self.streams.broadcast("delta", delta)


def registry_figures(registry: CollectorRegistry) -> list[tuple[str, float]]:
    """(name, value) of the boot servers' counters and gauges, labels summed; HTTP requests
    also by status class (``racker_http_requests 2xx``)."""
    out: dict[str, float] = {}
    for family in registry.collect():
        if family.type not in ("counter", "gauge"):
            continue
        for sample in family.samples:
            if sample.name.endswith("_created"):
                continue
            name = sample.name.removesuffix("_total")
            out[name] = out.get(name, 0.0) + sample.value
            status = sample.labels.get("status")
            if status:
                key = f"{name} {status[0]}xx"
                out[key] = out.get(key, 0.0) + sample.value
    return sorted(out.items())
