"""Sharing the rack with other racker processes (layer 4).

- ``RunLock``: one ``racker bootstrap`` per state directory, an exclusive ``flock(2)`` that the
  kernel drops whenever the process ends (even on SIGKILL), so a stale lock never blocks a resume.
- ``follow_store``: when a ``racker serve`` already runs the boot stack on the interface,
  bootstrap must not start a second one; it follows the events serve writes to the shared
  SQLite store (WAL mode lets both use it at once) and feeds them to the orchestrator.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Protocol

from racker.errors import StateError
from racker.events import DhcpEvent, Event, HttpEvent, PhoneHomeEvent, Publish, TftpEvent

LOCK_NAME = "bootstrap.lock"


class RunLock:
    """One bootstrap per state directory: an exclusive ``flock`` the kernel drops on any exit."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_NAME
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StateError(
                f"another racker bootstrap is running (pid {holder}, lock {self.path})",
                "wait for it to finish, or watch it with 'racker status'",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_EVENT_TYPES: dict[str, type[Event]] = {
    "dhcp": DhcpEvent,
    "tftp": TftpEvent,
    "http": HttpEvent,
    "phone-home": PhoneHomeEvent,
}


def event_from_dict(data: Mapping[str, Any]) -> Event | None:
    """An event read back from the store's log (``Event.to_dict``), for the sources that move
    nodes; None for others. Unknown keys (a newer racker's fields) are dropped."""
    cls = _EVENT_TYPES.get(str(data.get("source")))
    if cls is None or (cls is DhcpEvent and data.get("kind") == "discovery"):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


class FollowedLog(Protocol):
    """The stored event log, read off the event loop (``racker.store_writer.StoreReader``)."""

    async def last_event_id(self) -> int: ...

    async def events_after(
        self, last_id: int, limit: int = 1000
    ) -> list[tuple[int, dict[str, Any]]]: ...


async def follow_store(
    store: FollowedLog, feed: Publish, stop: asyncio.Event, interval: float = 0.25
) -> None:
    """Feed the events another process (a running ``racker serve``) writes to the store."""
    last = await store.last_event_id()
    while not stop.is_set():
        batch = await store.events_after(last)
        for event_id, data in batch:
            last = event_id
            event = event_from_dict(data)
            if event is not None:
                feed(event)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
