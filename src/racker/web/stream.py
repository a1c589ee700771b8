"""Server-Sent Events for the rack page: one bounded queue per browser, a bounded number of them.

A browser's first message is a full snapshot; then deltas (changed rows, warnings, counters),
at most one every ``RackFeed.TICK`` seconds. A browser that reads too slowly does not make
racker buffer without end: its queue is emptied and it gets a fresh snapshot instead (the
EventSource API reconnects by itself if the connection drops, and also starts from a snapshot).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger("racker.http")

# Browsers streaming at once; one more is told 503 (a rack page is for a few operators).
MAX_CLIENTS = 32
# Messages waiting for one browser (a few seconds of deltas); past it: a snapshot instead.
CLIENT_QUEUE = 64
# A comment line this often keeps proxies from closing an idle stream and finds dead peers.
HEARTBEAT = 15.0
# A browser that has not taken a message this long after it was written is cut off and its
# place freed: one that stopped reading (or a client that never reads) would hold it as long
# as its TCP connection stays up, and MAX_CLIENTS of them would shut every operator out. (A
# snapshot of 200 rows is ~80 KB: 30 s is 3 KB/s, far below any link an operator uses.)
WRITE_TIMEOUT = 30.0


class StreamClient:
    """One browser's bounded queue of messages (``event`` name, JSON-able data)."""

    def __init__(self, limit: int = CLIENT_QUEUE) -> None:
        self.limit = limit
        self.queue: collections.deque[tuple[str, Any]] = collections.deque()
        self.resync = True  # the first message: a snapshot
        self.closed = False
        self.wake = asyncio.Event()
        self.wake.set()

    def send(self, event: str, data: Any) -> None:
        if len(self.queue) >= self.limit:
            self.queue.clear()
            self.resync = True
        else:
            self.queue.append((event, data))
        self.wake.set()

    def resynchronise(self) -> None:
        self.queue.clear()
        self.resync = True
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


def sse(event: str, data: Any) -> bytes:
    """One SSE message; the JSON is on one line, so it is one ``data:`` field."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Streams:
    """The browsers streaming now; ``handler`` is the aiohttp route."""

    def __init__(
        self, snapshot: Callable[[], dict[str, Any]], max_clients: int = MAX_CLIENTS
    ) -> None:
        self.snapshot = snapshot
        self.max_clients = max_clients
        self.write_timeout = WRITE_TIMEOUT
        self.cut_off = 0  # browsers cut off for not reading
        self.clients: set[StreamClient] = set()

    def broadcast(self, event: str, data: Any) -> None:
        for client in self.clients:
            client.send(event, data)

    def resynchronise(self) -> None:
        for client in self.clients:
            client.resynchronise()

    def close(self) -> None:
        for client in self.clients:
            client.close()

    async def handler(self, request: web.Request) -> web.StreamResponse:
        if len(self.clients) >= self.max_clients:
            raise web.HTTPServiceUnavailable(
                text=f"{self.max_clients} rack pages are streaming already; try again later\n",
                headers={"Retry-After": "10"},
            )
        response = _EventStream(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        client = StreamClient()
        self.clients.add(client)

        async def write(data: bytes) -> None:
            await asyncio.wait_for(response.write(data), self.write_timeout)

        try:
            await write(b"retry: 2000\n\n")
            while not client.closed:
                try:
                    await asyncio.wait_for(client.wake.wait(), HEARTBEAT)
                except TimeoutError:
                    await write(b": keep-alive\n\n")
                    continue
                client.wake.clear()
                if client.resync:
                    client.resync = False
                    client.queue.clear()
                    await write(sse("snapshot", self.snapshot()))
                while client.queue and not client.resync:
                    await write(sse(*client.queue.popleft()))
        except (ConnectionError, RuntimeError) as exc:  # the browser went away
            log.debug("rack page stream closed: %s", exc)
        except TimeoutError:  # not reading: a half-written message cannot go on, so cut it
            self.cut_off += 1
            log.info("rack page stream of %s cut off: it read nothing for %.0f s",
                     request.remote, self.write_timeout)  # fmt: skip
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.clients.discard(client)
        return response


class _EventStream(web.StreamResponse):
    """A stream ends when the browser goes away or racker stops; its end is then no error
    (the server's middleware finishes every response it is handed)."""

    async def write_eof(self, data: bytes = b"") -> None:
        with contextlib.suppress(ConnectionError):
            await super().write_eof(data)
