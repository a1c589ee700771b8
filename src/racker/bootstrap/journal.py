"""The orchestrator's writes to the state store, off the event loop (layer 4).

``StateJournal`` takes node states and events as the orchestrator records them (on the loop,
never blocking) and hands them to a ``StoreJobs`` (in racker: the ``StoreWriter``, a thread with
its own SQLite connection) in batches: one batch in flight at a time, the next one growing
while it commits, as the event hub and the DHCP server's lease group commit do. A node's later
state replaces its earlier one in a batch (only the last is stored; every transition is still an
event in the log).

Batching is safe for what the orchestrator only observes; it is not for what it acts on. So
``committed()`` waits until everything recorded before it is committed, and the orchestrator
awaits it before every BMC action: a crash then never leaves the store behind what the BMCs were
told by more than the one action in flight (see docs/config.md, "What survives a crash").
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from racker.bootstrap.storage import NodeStateStore
from racker.events import Event
from racker.model import NodeState

log = logging.getLogger("racker.bootstrap")

T = TypeVar("T")


# A line for a per-node log file (racker bootstrap's log_dir): the file, the JSON text.
LogLine = tuple[Path, str]


class StoreJobs(Protocol):
    """Runs functions of a store, in order, somewhere (``racker.store_writer.StoreWriter``)."""

    def submit(self, job: Callable[[NodeStateStore], T]) -> concurrent.futures.Future[T]: ...


class InlineJobs:
    """``StoreJobs`` that run each job at once on the caller's thread: for tests and callers
    without a writer thread (the store's I/O then happens where they call from)."""

    def __init__(self, store: NodeStateStore) -> None:
        self.store = store

    def submit(self, job: Callable[[NodeStateStore], T]) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            done.set_result(job(self.store))
        except Exception as exc:
            done.set_exception(exc)
        return done


class StateJournal:
    """Node states and events on their way to the store, in batches, off the loop.

    ``record`` is for the event loop's thread only. A failed commit is logged and its batch
    retried after ``RETRY_DELAY`` (nothing recorded is dropped, except the oldest events and
    log lines beyond ``MAX_EVENTS`` while the store fails: states never are); ``committed()``
    waits meanwhile. The per-node log files' lines are appended by the same job, after its
    commit (a file append can block on a stalled disk too).
    """

    RETRY_DELAY = 1.0
    MAX_EVENTS = 10_000

    def __init__(self, jobs: StoreJobs) -> None:
        self.jobs = jobs
        self._states: dict[str, NodeState] = {}
        self._events: list[Event] = []
        self._lines: list[LogLine] = []
        self._recorded = 0  # how many records so far
        self._committed = 0  # every record up to this one is committed
        self._in_flight: concurrent.futures.Future[None] | None = None
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._dropped = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False  # close() gave up: no more retries

    def record(
        self,
        state: NodeState | None = None,
        events: Sequence[Event] = (),
        lines: Sequence[LogLine] = (),
    ) -> None:
        """Store ``state`` and ``events`` and append ``lines`` soon (the next batch); returns
        at once."""
        if state is not None:
            self._states[state.mac] = state
        self._events.extend(events)
        self._lines.extend(lines)
        self._dropped += _trim(self._events, self.MAX_EVENTS) + _trim(self._lines, self.MAX_EVENTS)
        self._recorded += 1
        self._schedule(0.0)

    @property
    def pending(self) -> bool:
        """Is anything recorded not committed yet?"""
        return self._committed < self._recorded

    async def committed(self) -> None:
        """Return once everything recorded before this call is committed."""
        target = self._recorded
        if self._committed >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._schedule(0.0)
        await waiter

    async def close(self) -> None:
        """Commit everything recorded (a run's end); gives up, logged, if the store fails."""
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        while self.pending or self._in_flight is not None:
            if self._in_flight is None:
                self._flush()
            flight = self._in_flight
            if flight is None:
                break
            try:
                await asyncio.wrap_future(flight)
            except Exception as exc:
                self._closed = True
                if self._scheduled is not None:  # the retry _done set up
                    self._scheduled.cancel()
                    self._scheduled = None
                log.warning("node states not stored at the end of the run: %s", exc)
                return
            await asyncio.sleep(0)  # let _done (call_soon_threadsafe) run

    # -- on the loop -------------------------------------------------------------------

    def _schedule(self, delay: float) -> None:
        if self._scheduled is not None or self._in_flight is not None:
            return  # the batch in flight's completion flushes what gathered meanwhile
        loop = self._loop = self._loop or asyncio.get_running_loop()
        if delay > 0:
            self._scheduled = loop.call_later(delay, self._flush)
        else:
            self._scheduled = loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = None
        if self._in_flight is not None or not self.pending:
            return
        states, events, lines = list(self._states.values()), self._events, self._lines
        self._states, self._events, self._lines = {}, [], []
        upto, loop = self._recorded, self._loop or asyncio.get_running_loop()
        if self._dropped:
            log.warning("%d bootstrap events not stored: the store kept failing", self._dropped)
            self._dropped = 0
        flight = self.jobs.submit(lambda store: _write(store, states, events, lines))
        self._in_flight = flight

        def finished(f: concurrent.futures.Future[None]) -> None:  # on the writer's thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._done, f, upto, states, events, lines)

        flight.add_done_callback(finished)

    def _done(
        self,
        flight: concurrent.futures.Future[None],
        upto: int,
        states: list[NodeState],
        events: list[Event],
        lines: list[LogLine],
    ) -> None:
        if self._in_flight is flight:
            self._in_flight = None
        exc = flight.exception()
        if exc is not None:
            log.warning("could not store node states (retrying in %.0f s): %s",
                        self.RETRY_DELAY, exc)  # fmt: skip
            for state in states:  # a newer state recorded meanwhile wins
                self._states.setdefault(state.mac, state)
            self._events[:0] = events
            self._lines[:0] = lines
            self._dropped += _trim(self._events, self.MAX_EVENTS)
            self._dropped += _trim(self._lines, self.MAX_EVENTS)
            if not self._closed:
                self._schedule(self.RETRY_DELAY)
            return
        self._committed = max(self._committed, upto)
        still = []
        for target, waiter in self._waiters:
            if target <= self._committed:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((target, waiter))
        self._waiters = still
        if self.pending:
            self._schedule(0.0)


def _trim(items: list[Any], limit: int) -> int:
    """Drop the oldest of ``items`` beyond ``limit``; how many were dropped."""
    excess = max(0, len(items) - limit)
    del items[:excess]
    return excess


def _write(
    store: NodeStateStore, states: list[NodeState], events: list[Event], lines: list[LogLine]
) -> None:
    # On the writer's thread: one transaction, then the log lines (after the commit, so
    # that a failed commit's retry does not write them twice).
    store.set_node_states(states, events)
    by_file: dict[Path, list[str]] = {}
    for path, text in lines:
        by_file.setdefault(path, []).append(text)
    for path, texts in by_file.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as out:
                out.write("".join(f"{text}\n" for text in texts))
        except OSError as exc:
            log.warning("cannot write the node log %s: %s", path, exc.strerror)
