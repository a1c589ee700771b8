"""EventHub: every server's events fan out from here — logged, stored in batches, delivered.

Servers only ever see the hub's ``publish`` (and ``keeps``, the DHCP hot path's question).
With a ``StoreWriter`` (``racker serve``), the batches are written on the writer's thread, never
on the event loop's.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import time
from collections.abc import Callable

from racker.dhcp.events import log_line as dhcp_log_line
from racker.events import DhcpEvent, DiscoveryEvent, Event, EventLogOverflow, Publish
from racker.store import Store
from racker.store_writer import StoreWriter

log = logging.getLogger("racker.serve")
_dhcp_log = logging.getLogger("racker.dhcp")


class EventHub:
    """Fan-out for events: log, persist (write-behind, batched), and subscribers.

    Subscribers see every event. The store's event log gets every event of the rack's own
    machines (``known``: a MAC in nodes.csv) and of racker itself, but the boot servers' events
    about anyone else (pool clients, strangers, unidentified HTTP peers) only up to
    ``STRANGER_EVENTS_PER_SECOND``: a persisted event costs JSON and SQLite work on the event
    loop, a DHCP exchange makes four, and a flood of unknown clients must not take the boot
    server's CPU or the disk. The same budget bounds the DHCP log lines (``-v``) of those
    clients. What is left out is counted, stored as one ``EventLogOverflow`` per flush and told
    in a warning at most once a minute.
    """

    # The event log keeps this many of the newest events (~100 MB of SQLite at most); pruned
    # once every PRUNE_EVERY flushes, so it costs nothing per packet.
    KEEP_EVENTS = 200_000
    PRUNE_EVERY = 300
    STRANGER_EVENTS_PER_SECOND = 1000
    BUDGETED_SOURCES = frozenset({"dhcp", "tftp", "http"})
    # Always stored: rare by construction (a rogue DHCP server: once a minute per server, a
    # bounded number a minute in all, dhcp/rogue.py), and what an operator must not miss.
    ALWAYS_KEPT_KINDS = frozenset({"rogue-dhcp"})
    OVERFLOW_WARNING_INTERVAL = 60.0

    def __init__(
        self,
        store: Store | None,
        flush_interval: float = 0.2,
        known: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        writer: StoreWriter | None = None,
    ) -> None:
        self.store = store
        # Writes go through here when set (off the loop); else to ``store`` on the caller's.
        self.writer = writer
        self._writing: concurrent.futures.Future[None] | None = None  # the batch in flight
        self.subscribers: list[Publish] = []
        self.streams: list[Subscription] = []  # subscribe(): bounded queues (the rack page)
        self.known = known  # is this MAC one of the rack's machines? (None: nobody is)
        self._pending: list[Event] = []
        self._flush_interval = flush_interval
        self._flushes = 0
        self._task: asyncio.Task[None] | None = None
        self._per_flush = max(1, int(self.STRANGER_EVENTS_PER_SECOND * flush_interval))
        self._budget = self._per_flush
        self._left_out = 0  # strangers' events not stored since the last flush
        self._left_out_since_warning = 0
        self._clock = clock
        self._warned = clock() - self.OVERFLOW_WARNING_INTERVAL
        self._window_start = time.time()

    def publish(self, event: Event) -> None:
        if self._within_budget(event):  # else neither stored nor logged: a line costs like a row
            _log_event(event)
            self._pending.append(event)
        for subscriber in list(self.subscribers):
            try:
                subscriber(event)
            except Exception:  # a broken subscriber must not break a server's hot path
                log.exception("event subscriber failed on %s", event.kind)
        for stream in self.streams:
            stream.put(event)

    def keeps(self, mac: str, count: int) -> bool:
        """Would ``count`` boot-server events about ``mac`` be stored, logged or delivered?

        If not (a client outside nodes.csv, the budget spent, no subscriber), they are counted
        as left out here, so a hot path (DHCP: four events per exchange) need not build them.
        """
        known = self.known
        if self.subscribers or self._budget > 0 or (known is not None and known(mac)):
            return True
        self._left_out += count
        return False

    def _within_budget(self, event: Event) -> bool:
        mac, known = event.mac, self.known
        if event.source not in self.BUDGETED_SOURCES or (mac and known and known(mac)):
            return True
        if event.kind in self.ALWAYS_KEPT_KINDS:
            return True
        if self._budget > 0:
            self._budget -= 1
            return True
        self._left_out += 1
        return False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._flusher())

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            self.flush()

    def flush(self) -> None:
        self._budget = self._per_flush
        now = time.time()
        if self._left_out:
            self._pending.append(
                EventLogOverflow(
                    "event-log-overflow",
                    None,
                    now,
                    left_out=self._left_out,
                    seconds=round(now - self._window_start, 3),
                    limit=self.STRANGER_EVENTS_PER_SECOND,
                )
            )
            self._left_out_since_warning += self._left_out
            self._left_out = 0
        self._window_start = now
        if self._left_out_since_warning and (
            self._clock() - self._warned >= self.OVERFLOW_WARNING_INTERVAL
        ):
            log.warning(
                "event log: %d events of clients outside nodes.csv not stored or logged (more"
                " than %d/s); the rack's own machines' events always are",
                self._left_out_since_warning,
                self.STRANGER_EVENTS_PER_SECOND,
            )
            self._warned = self._clock()
            self._left_out_since_warning = 0
        if not self._pending or (self.store is None and self.writer is None):
            self._pending.clear()
            return
        if self.writer is not None:
            if self._writing is not None and not self._writing.done():
                return  # one batch in flight at a time: this one grows meanwhile
            batch, self._pending = self._pending, []
            self._flushes += 1
            prune = self._flushes % self.PRUNE_EVERY == 0
            self._writing = self.writer.submit(lambda store: self._write(store, batch, prune))
            return
        assert self.store is not None
        batch, self._pending = self._pending, []
        self._flushes += 1
        self._write(self.store, batch, self._flushes % self.PRUNE_EVERY == 0)

    def _write(self, store: Store, batch: list[Event], prune: bool) -> None:
        try:
            store.append_events(batch)
            if prune:
                store.prune_events(self.KEEP_EVENTS)
        except Exception as exc:
            log.warning("could not write %d events to the store: %s", len(batch), exc)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._written()  # the batch in flight first, then the rest
        self.flush()
        await self._written()

    async def _written(self) -> None:
        if self._writing is None:
            return
        try:
            await asyncio.wrap_future(self._writing)
        except Exception as exc:  # the writer stopped: nothing more can be stored
            log.warning("could not write events to the store: %s", exc)


# -- subscriptions: bounded queues for readers that may fall behind (the rack page) -----------


class TooManySubscribers(RuntimeError):
    """``EventHub.subscribe`` refused: ``MAX_STREAMS`` subscriptions are open."""


class Subscription:
    """Events from the hub in a bounded queue, read by an asyncio task at its own pace.

    ``put`` is the hub's, on the event loop and cheap (an append). When the reader falls more
    than ``limit`` events behind, the queue is emptied and ``overflowed`` set: the reader must
    resynchronise from the store (what it missed is there), not trust a gap. Unlike
    ``subscribers``, a subscription does not make ``keeps`` say yes: the DHCP hot path still
    skips building the events of clients outside nodes.csv beyond the stored budget.
    """

    def __init__(self, hub: EventHub, limit: int) -> None:
        self._hub = hub
        self.limit = limit
        self._queue: collections.deque[Event] = collections.deque()
        self.overflowed = False
        self._ready = asyncio.Event()

    def put(self, event: Event) -> None:
        if len(self._queue) >= self.limit:
            self._queue.clear()
            self.overflowed = True
        else:
            self._queue.append(event)
        self._ready.set()

    async def get(self) -> tuple[list[Event], bool]:
        """Wait for events; returns them and whether some were dropped since the last get."""
        await self._ready.wait()
        self._ready.clear()
        events, self._queue = list(self._queue), collections.deque()
        overflowed, self.overflowed = self.overflowed, False
        return events, overflowed

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self._hub.streams.remove(self)


def subscribe(hub: EventHub, limit: int = 10_000) -> Subscription:
    """A new ``Subscription`` to ``hub`` (at most ``MAX_STREAMS`` at a time); ``close`` it."""
    if len(hub.streams) >= MAX_STREAMS:
        raise TooManySubscribers(f"{MAX_STREAMS} event subscriptions are open already")
    stream = Subscription(hub, limit)
    hub.streams.append(stream)
    return stream


MAX_STREAMS = 8


def _log_event(event: Event) -> None:
    # TFTP and HTTP log their transfers and requests themselves; DHCP, whose hot path does
    # not log, is told here from its events (at INFO: `racker -v serve`). DEBUG: every event.
    if isinstance(event, DhcpEvent | DiscoveryEvent) and _dhcp_log.isEnabledFor(logging.INFO):
        line = dhcp_log_line(event)
        if line is not None:
            _dhcp_log.info("%s", line)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("event %s", event.to_dict())
