"""Group commit of the DHCP server's lease changes (layer 3, used by ``racker.dhcp.server``).

As ISC dhcpd and Kea commit before they ACK: the lease changes the core decides are handed to
the lease store (``LeaseStore``: racker's ``StoreWriter``, a thread with its own SQLite
connection) in batches, and every reply about an address whose change is not committed yet
(an ACK, above all) is held until its batch is committed. A batch starts ``window`` after its
first change (the drains of those milliseconds share it), and one is in flight at a time: what
is decided meanwhile waits, and is committed together, when it returns. The store's thread
completes a future; its completion comes back to the loop through
``loop.call_soon_threadsafe``, or, while the server polls its sockets (``polled()``), the next
poll sees it (``check``): the server polls as long as a commit is in flight, so the thread
then wakes nobody. So an ACKed lease is on disk before the client has it, even if racker is
killed the next moment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from racker.dhcp.leases import LeaseEntry, LeaseTable, PersistedLease
from racker.dhcp.reply import Destination
from racker.events import Event

log = logging.getLogger("racker.dhcp")

# A lease as the store's leases table holds it: (dotted address, mac, state, expires,
# client_id, hostname).
LeaseRow = tuple[str, str, str, float, bytes | None, str | None]

# A reply held until a commit: where to, the bytes, and the events of its exchange (published
# when the reply is sent, not when it was decided).
Held = tuple[Destination, bytes, list[Event]]


class LeaseStore(Protocol):
    """What the server needs of a store (``racker.store_writer.StoreWriter`` off the loop;
    ``racker.store.Store``, committing on the caller's thread, in tests)."""

    def commit_lease_rows(
        self, rows: list[LeaseRow], now: float
    ) -> concurrent.futures.Future[None]: ...

    def leases(self) -> Iterable[PersistedLease]:
        """The leases as stored, after every commit asked for before."""
        ...


@dataclass(eq=False)
class _Commit:
    """One batch of lease changes in the store's hands, and the replies waiting for it."""

    table: LeaseTable  # the core's table when taken (a reload may swap the core meanwhile)
    changes: list[LeaseEntry]
    replies: list[Held]
    future: concurrent.futures.Future[None]
    finished: bool = False


class GroupCommit:
    """The server's lease changes on their way to ``store`` (None: kept in memory only).

    ``table()`` is the current core's lease table; ``release(replies, events_only)`` sends held
    replies and publishes their events (with ``events_only``: a failed commit's, whose replies
    never leave); ``polled()`` says whether the server is polling its sockets now.
    """

    def __init__(
        self,
        store: LeaseStore | None,
        table: Callable[[], LeaseTable],
        release: Callable[[list[Held], bool], None],
        polled: Callable[[], bool],
        clock: Callable[[], float],
        window: float,
    ) -> None:
        self.store = store
        self._table = table
        self._release = release
        self._polled = polled
        self._clock = clock
        self._window = window
        self.loop: asyncio.AbstractEventLoop | None = None
        self.in_flight: _Commit | None = None
        self._gathering: asyncio.TimerHandle | None = None  # a commit starting at the window's end
        self.waiting: list[Held] = []  # replies for the next commit
        self._idle: list[asyncio.Future[None]] = []  # close(): woken when nothing is unsettled
        self.withheld = 0  # replies of failed commits, never sent

    def busy(self) -> bool:
        return self.in_flight is not None or bool(self._table().pending or self.waiting)

    def after_drain(self, held: list[Held]) -> None:
        """A drain decided: hold ``held`` for the next commit, and start one (at the end of
        the window) if there is something to commit and none is in flight or gathering."""
        if held:
            self.waiting.extend(held)
        if self.in_flight is None and self._gathering is None and self.busy():
            if self._window and self.loop is not None:
                self._gathering = self.loop.call_later(self._window, self.start)
            else:
                self.start()

    def check(self) -> None:
        """A poll: finish the commit in flight if the store has returned it."""
        commit = self.in_flight
        if commit is not None and commit.future.done():
            self.finish(commit)

    async def settle(self) -> None:
        """Commit everything pending and send what waits for it (close)."""
        if self.loop is None:
            self.flush()
            return
        if self.busy():
            idle = self.loop.create_future()
            self._idle.append(idle)
            if self.in_flight is None:
                self.start()
            if not idle.done():
                await idle

    def flush(self) -> None:
        """Commit every pending lease change now and send the replies held for it; blocks the
        caller until the store has committed (SIGHUP's reload, and a server never started)."""
        while True:
            commit = self.in_flight
            if commit is not None:
                concurrent.futures.wait([commit.future])
                if not self.finish(commit):
                    return  # logged: the changes stay in memory, pending
            elif self.busy():
                self.start()
            else:
                return

    def start(self) -> None:
        """Hand the pending lease changes to the store as one batch, with the replies held for
        them; without changes, the replies held go out (what they waited for is committed)."""
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        if self.in_flight is not None:  # the window ended during a commit: it starts the next
            return
        table, store = self._table(), self.store
        changes = table.take_changes()
        replies, self.waiting = self.waiting, []
        if store is None:
            table.settle(changes)  # kept in memory only
        if store is None or not changes:
            self._release(replies, False)
            self._wake_idle()
            return
        rows = [_lease_row(c) for c in changes]
        try:
            future = store.commit_lease_rows(rows, self._clock())
        except Exception as exc:  # a store that fails to take the batch fails the batch
            future = concurrent.futures.Future()
            future.set_exception(exc)
        commit = self.in_flight = _Commit(table, changes, replies, future)
        if future.done():  # a store committing on this thread (tests): no loop needed
            self.finish(commit)
            return
        loop, polled = self.loop or asyncio.get_running_loop(), self._polled

        def committed(_: concurrent.futures.Future[None]) -> None:  # on the store's thread
            if polled():  # the loop polls until this commit is finished: it will see it
                return
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to answer
                loop.call_soon_threadsafe(self.finish, commit)

        future.add_done_callback(committed)

    def finish(self, commit: _Commit) -> bool:
        """A commit returned (on the loop): send its replies, or, if it failed, keep its
        changes pending (its replies are dropped: the clients ask again). Then commit what was
        decided meanwhile. True if it was committed."""
        if commit.finished:
            return commit.future.exception() is None
        commit.finished = True
        if self.in_flight is commit:
            self.in_flight = None
        error = commit.future.exception()
        commit.table.settle(commit.changes, committed=error is None)
        if error is not None:
            self.withheld += len(commit.replies)
            log.error(
                "DHCP: committing %d lease changes failed (%s); %d replies withheld, the"
                " changes stay in memory and are tried again",
                len(commit.changes),
                error,
                len(commit.replies),
            )
            self._release(commit.replies, True)
            self._wake_idle(failed=True)
            return False
        self._release(commit.replies, False)
        if self._table().pending or self.waiting:
            self.start()
        else:
            self._wake_idle()
        return True

    def _wake_idle(self, failed: bool = False) -> None:
        if self.in_flight is not None or (not failed and self.busy()):
            return
        idle, self._idle = self._idle, []
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)


def _lease_row(entry: LeaseEntry) -> LeaseRow:
    dotted = socket.inet_ntoa(entry.address.to_bytes(4, "big"))
    return (dotted, entry.mac, entry.state.value, entry.expires, entry.client_id, entry.hostname)
