"""Blocking BMC clients (pyghmi, sushy) run off the event loop, within a deadline (layer 2).

Both client libraries block, so the IPMI and Redfish drivers run every operation in a worker
thread through ``BmcWorkers.run``, which gives each the same guarantees:

- a deadline: the caller has an answer or a typed error within ``timeout`` seconds, time spent
  waiting for the BMC's previous operation included;
- one operation at a time per BMC (BMCs have few session slots, and a client session is not
  shared between threads); the BMC stays busy until the thread has really finished, even after
  the caller was given up on, so a late thread never overlaps the next operation;
- different BMCs run concurrently, up to ``max_workers`` threads at once.

What a driver does when it gives up (evict pyghmi's session, drop a Redfish session) and how it
words the errors stays with the driver: ``busy`` and ``gave_up`` build them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from racker.errors import BmcError

T = TypeVar("T")


class BmcWorkers:
    def __init__(self, max_workers: int, thread_name_prefix: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix=thread_name_prefix)
        self._busy: dict[Hashable, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(
        self,
        key: Hashable,
        timeout: float,
        work: Callable[[], T],
        *,
        busy: Callable[[], BmcError],
        gave_up: Callable[[], BmcError],
    ) -> T:
        """Run ``work`` in a thread once the BMC ``key`` is free; raise ``busy()`` if it stays
        taken, or ``gave_up()`` if the thread is not done, within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if loop is not self._loop:  # asyncio locks belong to one loop (one asyncio.run)
            self._loop, self._busy = loop, {}
        lock = self._busy.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), timeout)
        except TimeoutError:
            raise busy() from None
        try:
            future = loop.run_in_executor(self._pool, work)
        except BaseException:
            lock.release()
            raise
        # The BMC is free again only when the thread has finished, not when we stop waiting.
        future.add_done_callback(lambda f: _finished(f, lock))
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(deadline - loop.time(), 0))
        except TimeoutError:
            raise gave_up() from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _finished(future: asyncio.Future[Any], lock: asyncio.Lock) -> None:
    lock.release()
    if not future.cancelled():
        future.exception()  # retrieved: an abandoned operation's error was already reported
