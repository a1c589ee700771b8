"""The DHCP server's group commit: an ACK leaves only once its lease is committed.

The server is driven through its drain with a lease store whose commits the test completes by
hand (as the store's writer thread would), and its sends recorded instead of put on a wire.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from racker.dhcp.codec import decode
from racker.dhcp.commits import LeaseRow
from racker.dhcp.core import ReceiveInfo, build_core
from racker.dhcp.reply import Destination
from racker.dhcp.server import DhcpServer
from racker.dhcp.settings import DhcpSettings, core_settings
from racker.store import Lease, Store
from racker.store_writer import StoreWriter
from tests.unit.dhcp.corekit import (
    BMC_MAC,
    PLAN,
    RELAY_IP,
    RESERVATIONS,
    SERVER,
    config,
    ip,
    make_core,
    request,
)

A, B = "52:54:00:cc:00:0a", "52:54:00:cc:00:0b"
RELAYED = ReceiveInfo(relayed=True)


class HandCommits:
    """A lease store whose commits are completed by the test."""

    def __init__(self) -> None:
        self.commits: list[tuple[list[LeaseRow], concurrent.futures.Future[None]]] = []

    def commit_lease_rows(
        self, rows: list[LeaseRow], now: float
    ) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.commits.append((rows, future))
        return future

    def leases(self) -> list[Lease]:
        return []


class Wire:
    """The server's sends, as (message type, yiaddr); and datagrams for it to drain."""

    def __init__(self, server: DhcpServer) -> None:
        self.server = server
        self.sent: list[tuple[int, str]] = []
        server._send = self._record  # type: ignore[method-assign]

    def _record(self, dest: Destination, reply: bytes) -> None:
        message = decode(reply)
        self.sent.append((message.options[53][0], ip(message.yiaddr)))

    def deliver(self, *payloads: bytes) -> None:
        """One drain of the socket holding ``payloads``."""
        queued = [(p, RELAYED, RELAY_IP) for p in payloads]

        def receive(_recv: object) -> tuple[bytes, ReceiveInfo, str]:
            if not queued:
                raise BlockingIOError
            return queued.pop(0)

        self.server._drain(receive, lambda _n: b"", "relay agents")  # type: ignore[arg-type]


def discover(mac: str, xid: int) -> bytes:
    return request("discover", mac, xid=xid, giaddr=RELAY_IP)


def select(mac: str, address: str, xid: int) -> bytes:
    options = [("server_id", SERVER), ("requested_addr", address)]
    return request("request", mac, options, xid=xid, giaddr=RELAY_IP)


OFFER, ACK = 2, 5


async def settled() -> None:
    """Let the loop run the completions the writer thread scheduled."""
    for _ in range(3):
        await asyncio.sleep(0)


async def test_acks_wait_for_their_commit_and_what_comes_meanwhile_is_committed_together() -> None:
    store = HandCommits()
    server = DhcpServer("dhcp-test0", make_core("pool"), lambda _e: None, store, commit_window=0)
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1), discover(B, 2))
    assert wire.sent == [(OFFER, "10.98.1.0"), (OFFER, "10.98.1.1")]  # OFFERs: no commit
    assert store.commits == []
    wire.deliver(select(A, "10.98.1.0", 3))
    assert wire.sent[2:] == []  # held
    assert [row[:3] for row in store.commits[0][0]] == [("10.98.1.0", A, "bound")]
    # While that commit is out: B's REQUEST, A's retransmission (acknowledged as the lease
    # stands, nothing new to write, but its lease is not stored yet) and a new DISCOVER.
    wire.deliver(select(B, "10.98.1.1", 4), select(A, "10.98.1.0", 5), discover(B, 6))
    assert wire.sent[2:] == []  # B's OFFER of its own uncommitted address waits too
    assert len(store.commits) == 1  # one commit in flight; B's change waits for it
    store.commits[0][1].set_result(None)
    await settled()
    assert wire.sent[2:] == [(ACK, "10.98.1.0")]
    assert [row[:3] for row in store.commits[1][0]] == [("10.98.1.1", B, "bound")]
    store.commits[1][1].set_result(None)
    await settled()
    assert sorted(wire.sent[3:]) == [(OFFER, "10.98.1.1"), (ACK, "10.98.1.0"), (ACK, "10.98.1.1")]
    assert server.core.leases.unsettled == 0
    await server.close()


async def test_a_failed_commit_sends_no_ack_and_the_change_is_committed_on_the_next_try() -> None:
    store = HandCommits()
    server = DhcpServer("dhcp-test0", make_core("pool"), lambda _e: None, store, commit_window=0)
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1))
    wire.deliver(select(A, "10.98.1.0", 2))
    store.commits[0][1].set_exception(sqlite3.OperationalError("disk I/O error"))
    await settled()
    assert wire.sent == [(OFFER, "10.98.1.0")]  # no ACK for a lease not stored
    assert server.dropped == 1 and server.core.leases.pending == 1
    wire.deliver(select(A, "10.98.1.0", 3))  # the client asks again
    assert [row[:3] for row in store.commits[1][0]] == [("10.98.1.0", A, "bound")]
    store.commits[1][1].set_result(None)
    await settled()
    assert wire.sent[1:] == [(ACK, "10.98.1.0")]


async def test_close_waits_for_the_commit_in_flight_and_sends_its_acks() -> None:
    store = HandCommits()
    server = DhcpServer("dhcp-test0", make_core("pool"), lambda _e: None, store, commit_window=0)
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1))
    wire.deliver(select(A, "10.98.1.0", 2))
    closing = asyncio.ensure_future(server.close())
    await settled()
    assert not closing.done()
    store.commits[0][1].set_result(None)
    await asyncio.wait_for(closing, 1)
    assert wire.sent[1:] == [(ACK, "10.98.1.0")]


async def test_through_the_store_writer_the_lease_is_on_disk_when_the_ack_leaves(
    tmp_path: Path,
) -> None:
    Store.open(tmp_path).close()
    writer = StoreWriter(tmp_path / "racker.db", "FULL")
    writer.start()
    try:
        server = DhcpServer(
            "dhcp-test0", make_core("pool"), lambda _e: None, writer, commit_window=0
        )
        server._loop = asyncio.get_running_loop()
        wire = Wire(server)
        on_disk: list[list[str]] = []

        def record(dest: Destination, reply: bytes) -> None:
            with Store.open(tmp_path) as reader:  # another connection, as after a crash
                on_disk.append([x.mac for x in reader.leases()])
            Wire._record(wire, dest, reply)

        server._send = record  # type: ignore[method-assign]
        wire.deliver(discover(A, 1))
        wire.deliver(select(A, "10.98.1.0", 2))
        await asyncio.wait_for(server.close(), 5)
        assert wire.sent == [(OFFER, "10.98.1.0"), (ACK, "10.98.1.0")]
        assert on_disk == [[], [A]]
        # dhcp.lease_sync: the writer's connection fsyncs every commit (FULL = 2).
        assert (
            writer.submit(lambda s: s._db.execute("PRAGMA synchronous").fetchone()[0]).result() == 2
        )
    finally:
        writer.close()


async def test_a_reload_waits_for_the_commit_in_flight_and_the_new_core_holds_the_lease(
    tmp_path: Path,
) -> None:
    Store.open(tmp_path).close()
    writer = StoreWriter(tmp_path / "racker.db", commit_delay=0.2)  # a slow disk
    writer.start()
    try:
        settings = DhcpSettings(
            core_settings(config("pool"), PLAN, 8080), RESERVATIONS, frozenset({BMC_MAC})
        )
        server = DhcpServer(
            "dhcp-test0", build_core(settings), lambda _e: None, writer, commit_window=0
        )
        server._loop = asyncio.get_running_loop()
        wire = Wire(server)
        wire.deliver(discover(A, 1))
        wire.deliver(select(A, "10.98.1.0", 2))
        assert wire.sent == [(OFFER, "10.98.1.0")]  # the commit is under way
        old = server.core
        server.reload(settings)  # SIGHUP: blocks until the store has it all
        assert wire.sent == [(OFFER, "10.98.1.0"), (ACK, "10.98.1.0")]
        assert server.core is not old
        held = server.core.leases.for_mac(A)
        assert held is not None and ip(held.address.to_bytes(4, "big")) == "10.98.1.0"
        await settled()  # the writer's own completion, arriving late, changes nothing
        assert len(wire.sent) == 2
        await server.close()
    finally:
        writer.close()


async def test_the_changes_of_drains_within_the_commit_window_share_one_commit() -> None:
    store = HandCommits()
    server = DhcpServer("dhcp-test0", make_core("pool"), lambda _e: None, store, commit_window=0.05)
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1), discover(B, 2))
    wire.deliver(select(A, "10.98.1.0", 3))
    wire.deliver(select(B, "10.98.1.1", 4))
    assert store.commits == []  # the window is open
    await asyncio.sleep(0.1)
    assert [row[:3] for row in store.commits[0][0]] == [
        ("10.98.1.0", A, "bound"),
        ("10.98.1.1", B, "bound"),
    ]
    assert wire.sent[2:] == []
    store.commits[0][1].set_result(None)
    await settled()
    assert wire.sent[2:] == [(ACK, "10.98.1.0"), (ACK, "10.98.1.1")]


async def test_an_acks_event_is_published_when_the_ack_is_sent_not_when_it_is_decided() -> None:
    store = HandCommits()
    published: list[tuple[str, str, int]] = []  # (message, direction, ACKs sent so far)
    server = DhcpServer(
        "dhcp-test0",
        make_core("pool"),
        lambda e: published.append((e.message, e.direction, len(wire.sent))),  # type: ignore[attr-defined]
        store,
        commit_window=0,
    )
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1))
    assert published == [("DISCOVER", "in", 1), ("OFFER", "out", 1)]  # sent at once
    wire.deliver(select(A, "10.98.1.0", 2))
    assert published[2:] == []  # the ACK is held, and so are its exchange's events
    store.commits[0][1].set_result(None)
    await settled()
    assert published[2:] == [("REQUEST", "in", 2), ("ACK", "out", 2)]  # after the ACK left
    await server.close()


async def test_a_failed_commit_publishes_the_request_but_not_the_ack_never_sent() -> None:
    store = HandCommits()
    published: list[tuple[str, str]] = []
    server = DhcpServer(
        "dhcp-test0",
        make_core("pool"),
        lambda e: published.append((e.message, e.direction)),  # type: ignore[attr-defined]
        store,
        commit_window=0,
    )
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    wire.deliver(discover(A, 1), select(A, "10.98.1.0", 2))
    store.commits[0][1].set_exception(sqlite3.OperationalError("disk I/O error"))
    await settled()
    assert published[2:] == [("REQUEST", "in")]


async def until(condition: Callable[[], object]) -> None:
    """Let the loop run until ``condition()`` holds (a generous bound: a hang fails, slow not)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("the condition never held")


async def test_under_load_the_sockets_are_polled_and_a_poll_notices_the_commit() -> None:
    store = HandCommits()
    server = DhcpServer("dhcp-test0", make_core("pool"), lambda _e: None, store, commit_window=0)
    server._loop = asyncio.get_running_loop()
    wire = Wire(server)
    # Localhost UDP sockets stand in for the relay socket and the (silent) packet socket.
    relay, link = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    for sock in (relay, link):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    server._udp, server._raw, server._reading = relay, link, True
    server._add_readers()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent:
        agent.sendto(discover(A, 1), relay.getsockname())
        agent.sendto(select(A, "10.98.1.0", 2), relay.getsockname())
        await until(lambda: store.commits)
    assert server._polling  # woken once, the server now polls its sockets
    assert wire.sent == [(OFFER, "10.98.1.0")]
    # The store's thread completes the commit and, the server polling, wakes nobody: the next
    # poll sends the ACK, and a poll with nothing to do goes back to waking on readiness.
    done = threading.Thread(target=store.commits[0][1].set_result, args=(None,))
    done.start()
    done.join()
    await until(lambda: len(wire.sent) == 2)
    assert wire.sent[1] == (ACK, "10.98.1.0")
    await until(lambda: not server._polling)
    await server.close()
    assert relay.fileno() == -1 and link.fileno() == -1  # closed by the server
