"""``StoreWriter``: the store's writes off the event loop, on a thread with its own connection
(layer 2, beside ``racker.store``)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from racker.errors import StateError
from racker.store import Lease, LeaseRow, Store, Synchronous

T = TypeVar("T")


class StoreWriter:
    """The store's writes, off the event loop: one thread with its own connection.

    Jobs (a function of a ``Store``) run one at a time, in the order submitted, each in its
    own transaction(s); ``submit`` returns a ``concurrent.futures.Future`` the thread completes
    (the DHCP server and the event hub hand its completion to their loop with
    ``loop.call_soon_threadsafe``). The queue is bounded: each producer keeps at most one job
    in flight and batches while it waits (group commit), so a full queue means a stuck disk,
    and ``submit`` then blocks its caller rather than buffer without end.

    ``commit_delay`` (tests only, set by the composition root) sleeps before every job, as a
    slow disk would.
    """

    QUEUE_SIZE = 64

    def __init__(
        self, path: Path, synchronous: Synchronous = "NORMAL", *, commit_delay: float = 0.0
    ) -> None:
        self.path = path
        self._synchronous: Synchronous = synchronous
        self._commit_delay = commit_delay
        self._jobs: queue.Queue[
            tuple[Callable[[Store], Any], concurrent.futures.Future[Any]] | None
        ]
        self._jobs = queue.Queue(self.QUEUE_SIZE)
        self._opened: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="racker-store-writer", daemon=True)
        self._lease_writes = 0  # lease commits submitted (on the event loop's thread)
        self._prefetched: tuple[int, list[Lease]] | None = None

    def start(self) -> None:
        """Start the thread and open its connection (raises ``StateError`` as ``Store`` does)."""
        self._thread.start()
        self._opened.result()

    def submit(self, job: Callable[[Store], T]) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()
        if not self._thread.is_alive():
            done.set_exception(StateError("the store's writer is not running"))
            return done
        self._jobs.put((job, done))
        return done

    def commit_lease_rows(
        self, rows: list[LeaseRow], now: float
    ) -> concurrent.futures.Future[None]:
        """The DHCP server's lease sink: one transaction for a batch of lease changes."""
        self._lease_writes += 1
        return self.submit(lambda store: store.save_lease_rows(rows, now))

    def leases(self) -> list[Lease]:
        """The leases as stored once every write submitted before is done (SIGHUP's DHCP
        reload): what ``prefetch_leases`` read if no lease change was submitted since, else
        read now, which blocks the caller until the writer gets to it."""
        prefetched, self._prefetched = self._prefetched, None
        if prefetched is not None and prefetched[0] == self._lease_writes:
            return prefetched[1]
        return self.submit(lambda store: store.leases()).result()

    async def prefetch_leases(self) -> None:
        """Read the leases on the writer's thread for the next ``leases()`` (a SIGHUP reload
        awaits this first, so that the DHCP server's reload, which is not async, need not wait
        for the writer on the event loop's thread). Only this process writes leases, through
        here: a read after every lease change submitted so far is still exact if none was
        submitted since."""
        writes = self._lease_writes
        found = await asyncio.wrap_future(self.submit(lambda store: store.leases()))
        self._prefetched = (writes, found)

    def close(self) -> None:
        """Finish every job submitted, then stop the thread (blocks until it has)."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()

    def _run(self) -> None:
        try:
            store = Store(self.path, self._synchronous)
        except BaseException as exc:
            self._opened.set_exception(exc)
            return
        self._opened.set_result(None)
        try:
            while (item := self._jobs.get()) is not None:
                job, done = item
                if not done.set_running_or_notify_cancel():
                    continue
                if self._commit_delay:
                    time.sleep(self._commit_delay)
                try:
                    result = job(store)
                except BaseException as exc:
                    done.set_exception(exc)
                else:
                    done.set_result(result)
        finally:
            store.close()


def run_on_connection(path: Path, job: Callable[[Store], T]) -> T:
    """``job`` on a connection of its own, opened and closed here: it blocks, so it is for a
    thread (``asyncio.to_thread``), never the event loop's (WAL: it reads the last commit and
    waits for no writer)."""
    with Store(path) as store:
        return job(store)


class StoreReader:
    """The store's reads for asyncio code: each on a thread, on a connection of its own
    (``run_on_connection``), so the event loop never waits for the disk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self, job: Callable[[Store], T]) -> T:
        return await asyncio.to_thread(run_on_connection, self.path, job)

    async def last_event_id(self) -> int:
        return await self.read(Store.last_event_id)

    async def events_after(
        self, last_id: int, limit: int = 1000
    ) -> list[tuple[int, dict[str, Any]]]:
        return await self.read(lambda store: store.events_after(last_id, limit))
