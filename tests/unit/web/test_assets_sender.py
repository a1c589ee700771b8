"""racker.web.sendfile: an asset's body sent with os.sendfile, one writer callback.

The sender alone on a socket pair (what it does when the peer is slow, gone, or the file
shrinks), then through racker's HTTP server with raw socket clients: a client that stops
reading (the file is not read into memory), one that leaves mid-file, a file replaced or
truncated during a download, many clients at once, and the request records (status, bytes)
of each. Both event loops racker runs on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

import racker.web.handlers
import racker.web.sendfile
from racker.events import Event, HttpEvent
from racker.web import BootHttpServer
from racker.web.assets import AssetLookup
from racker.web.sendfile import ClientStalled, FileShrank, _Sender, send_file
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import StandinCatalog, context_for

MIB = 1 << 20


def pattern(size: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB, not periodic in pages
    return (block * (size // len(block) + 1))[:size]


# -- the sender on a socket pair -------------------------------------------------------------


@pytest.fixture
def pair() -> AsyncIterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def drain(sock: socket.socket) -> bytes:
    got = b""
    while True:
        try:
            chunk = sock.recv(MIB)
        except BlockingIOError:
            return got
        if not chunk:
            return got
        got += chunk


async def test_the_sender_fills_the_socket_then_waits_for_the_next_wake_up(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    data = pattern(8 * MIB)
    (tmp_path / "f").write_bytes(data)
    a, b = pair
    with (tmp_path / "f").open("rb") as f:
        sender = _Sender(asyncio.get_running_loop(), a.fileno(), f.fileno(), 100, len(data) - 200)
        sender.step()
        assert not sender.done.done()  # the socket buffer is full: 8 MiB do not fit
        got = b""
        calls = 1
        while not sender.done.done():
            got += drain(b)
            sender.step()
            calls += 1
        got += drain(b)
    assert sender.done.result() == len(data) - 200
    assert got == data[100:-100]
    assert calls > 2  # it did wait, more than once


async def test_a_file_that_shrinks_fails_the_send(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(pattern(1000))
    a, _ = pair
    with (tmp_path / "f").open("rb") as f:
        sender = _Sender(asyncio.get_running_loop(), a.fileno(), f.fileno(), 0, 5000)
        sender.step()  # 1000 bytes: a short send looks like a full socket buffer...
        assert not sender.done.done()
        sender.step()  # ...and the next wake-up finds the end of the file
    with pytest.raises(FileShrank, match="4000 bytes short"):
        sender.done.result()


async def test_a_peer_gone_fails_the_send_as_a_connection_error(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(pattern(1000))
    a, b = pair
    b.close()
    with (tmp_path / "f").open("rb") as f:
        sender = _Sender(asyncio.get_running_loop(), a.fileno(), f.fileno(), 0, 1000)
        sender.step()
    with pytest.raises(ConnectionError):
        sender.done.result()


async def test_nothing_to_send_is_done_at_once(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with (tmp_path / "f").open("rb") as f:
        sender = _Sender(asyncio.get_running_loop(), pair[0].fileno(), f.fileno(), 0, 0)
    assert sender.done.result() == 0


# -- through the HTTP server -----------------------------------------------------------------


class Server:
    def __init__(self, srv: BootHttpServer, assets: Path, events: list[Event]) -> None:
        self.srv, self.assets, self.events = srv, assets, events

    def requests(self) -> list[tuple[str, str, int, int]]:
        return [
            (e.method, e.path, e.status, e.bytes) for e in self.events if isinstance(e, HttpEvent)
        ]

    async def recorded(self, count: int) -> list[tuple[str, str, int, int]]:
        """The request records, once there are ``count`` (aiohttp records after its last write;
        a request cut short is recorded once the server notices)."""
        for _ in range(500):
            if len(self.requests()) >= count:
                break
            await asyncio.sleep(0.01)
        return self.requests()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    assets = tmp_path / "assets"
    assets.mkdir()
    events: list[Event] = []
    srv = BootHttpServer(
        "127.0.0.1", 0, StandinCatalog(), context_for, key=KEY, assets_dir=assets,
        publish=events.append, clock=lambda: NOW,
    )  # fmt: skip
    await srv.start()
    try:
        yield Server(srv, assets, events)
    finally:
        await srv.close()


async def get(
    port: int, path: str, extra: str = ""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    headers[":status"] = lines[0].split()[1]
    return reader, writer, headers


async def test_a_download_is_recorded_with_its_status_and_bytes(server: Server) -> None:
    data = pattern(3 * MIB + 5)
    (server.assets / "k").write_bytes(data)
    reader, writer, headers = await get(server.srv.port, "/assets/k")
    assert headers[":status"] == "200"
    assert await reader.readexactly(len(data)) == data
    reader2, writer2, ranged = await get(server.srv.port, "/assets/k", "Range: bytes=10-19\r\n")
    assert ranged[":status"] == "206"
    assert await reader2.readexactly(10) == data[10:20]
    writer.write(b"HEAD /assets/k HTTP/1.1\r\nHost: x\r\n\r\n")  # the first connection: kept
    assert b"Content-Length: 3145733" in await reader.readuntil(b"\r\n\r\n")
    assert await server.recorded(3) == [
        ("GET", "/assets/k", 200, len(data)),
        ("GET", "/assets/k", 206, 10),
        ("HEAD", "/assets/k", 200, 0),
    ]
    writer.close()
    writer2.close()


async def test_a_client_that_stops_reading_holds_no_copy_of_the_file(server: Server) -> None:
    data = pattern(48 * MIB, seed=1)
    (server.assets / "big").write_bytes(data)
    tracemalloc.start()
    try:
        reader, writer, _ = await get(server.srv.port, "/assets/big")
        first = await reader.readexactly(MIB)
        await asyncio.sleep(0.3)  # the server fills the socket buffers, then must wait
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The socket buffers hold a few MiB; what Python holds is the client's 1 MiB read and
    # its stream buffer, nothing like the 47 MiB still to send.
    assert peak < 6 * MIB, peak
    digest = hashlib.sha256(first)
    left = len(data) - MIB
    while left:
        chunk = await reader.read(min(left, MIB))
        digest.update(chunk)
        left -= len(chunk)
    assert digest.digest() == hashlib.sha256(data).digest()
    writer.close()
    assert await server.recorded(1) == [("GET", "/assets/big", 200, len(data))]
    # The record's duration spans the whole send, which could not end before the client
    # read again, after its 0.3 s pause.
    (event,) = [e for e in server.events if isinstance(e, HttpEvent)]
    assert event.duration >= 0.3


async def test_a_client_gone_mid_file_is_recorded_and_the_server_serves_on(
    server: Server,
) -> None:
    (server.assets / "big").write_bytes(pattern(32 * MIB))
    fds = len(os.listdir("/proc/self/fd"))
    reader, writer, _ = await get(server.srv.port, "/assets/big")
    await reader.readexactly(MIB)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    writer.close()  # linger 0: a reset, as from a client killed mid-download
    assert await server.recorded(1) == [("GET", "/assets/big", 200, 0)]
    reader, writer, headers = await get(server.srv.port, "/healthz")
    assert headers[":status"] == "200"
    writer.close()
    await asyncio.sleep(0.05)
    assert len(os.listdir("/proc/self/fd")) <= fds  # the duplicated descriptor is closed


async def test_a_file_replaced_during_a_download_is_sent_whole_as_it_was(
    server: Server,
) -> None:
    old, new = pattern(16 * MIB, seed=2), pattern(5 * MIB, seed=3)
    (server.assets / "img").write_bytes(old)
    reader, writer, _ = await get(server.srv.port, "/assets/img")
    got = await reader.readexactly(MIB)
    (server.assets / "img.new").write_bytes(new)
    os.replace(server.assets / "img.new", server.assets / "img")  # how a mirror updates
    got += await reader.readexactly(len(old) - MIB)
    assert got == old
    writer.write(b"GET /assets/img HTTP/1.1\r\nHost: x\r\n\r\n")  # the next one: the new file
    assert b"Content-Length: 5242880" in await reader.readuntil(b"\r\n\r\n")
    assert await reader.readexactly(len(new)) == new
    writer.close()


async def test_a_file_truncated_during_a_download_closes_the_connection(
    server: Server,
) -> None:
    data = pattern(32 * MIB, seed=4)
    (server.assets / "img").write_bytes(data)
    reader, writer, _ = await get(server.srv.port, "/assets/img")
    got = await reader.readexactly(MIB)
    os.truncate(server.assets / "img", 8 * MIB)  # rewritten in place: the promise is broken
    got += await asyncio.wait_for(reader.read(), 10)  # to the server's close: a short body
    assert len(got) < len(data)
    assert got == data[: len(got)]
    writer.close()
    assert await server.recorded(1) == [("GET", "/assets/img", 200, 0)]
    _, writer, headers = await get(server.srv.port, "/healthz")
    assert headers[":status"] == "200"
    writer.close()


async def test_many_clients_at_once_each_get_the_whole_file(server: Server) -> None:
    data = pattern(6 * MIB + 123, seed=5)
    (server.assets / "img").write_bytes(data)
    want = hashlib.sha256(data).digest()

    async def one() -> bytes:
        reader, writer, headers = await get(server.srv.port, "/assets/img")
        assert headers["content-length"] == str(len(data))
        body = await reader.readexactly(len(data))
        writer.close()
        return hashlib.sha256(body).digest()

    assert await asyncio.gather(*(one() for _ in range(24))) == [want] * 24
    assert await server.recorded(24) == [("GET", "/assets/img", 200, len(data))] * 24


async def test_the_body_goes_through_racker_send_file(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AssetResponse hooks FileResponse's ``_sendfile``: an aiohttp that renamed it would send
    the body its own way, and this fails."""
    calls: list[int] = []

    async def counting(transport: asyncio.Transport, fobj: object, offset: int, n: int) -> int:
        calls.append(n)
        return await send_file(transport, fobj, offset, n)  # type: ignore[arg-type]

    monkeypatch.setattr(racker.web.handlers, "send_file", counting)
    (server.assets / "k").write_bytes(pattern(100_000))
    reader, writer, _ = await get(server.srv.port, "/assets/k", "Range: bytes=-1000\r\n")
    assert await reader.readexactly(1000) == pattern(100_000)[-1000:]
    writer.close()
    assert calls == [1000]


def test_uvloop_sends_with_sendfile_too(tmp_path: Path) -> None:
    """On uvloop, aiohttp's FileResponse cannot sendfile (uvloop has no loop.sendfile) and
    reads the file through memory; racker's sender works on any loop with add_writer."""
    uvloop = pytest.importorskip("uvloop")
    data = pattern(20 * MIB, seed=6)
    (tmp_path / "img").write_bytes(data)
    sent: list[int] = []
    real = os.sendfile

    def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        n = real(out_fd, in_fd, offset, count)
        sent.append(n)
        return n

    async def scenario() -> bytes:
        srv = BootHttpServer(
            "127.0.0.1", 0, StandinCatalog(), context_for, key=KEY, assets_dir=tmp_path,
            clock=lambda: NOW,
        )  # fmt: skip
        await srv.start()
        try:
            reader, writer, _ = await get(srv.port, "/assets/img")
            body = await reader.readexactly(len(data))
            writer.close()
            return body
        finally:
            await srv.close()

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "sendfile", counting)
    try:
        runner: Callable[[], bytes] = lambda: uvloop.run(scenario())  # noqa: E731
        assert runner() == data
    finally:
        mp.undo()
    assert sum(sent) == len(data)


async def test_pipelined_requests_are_answered_in_order(server: Server) -> None:
    """A second request sent while the first body is on its way waits its turn (reading is
    not paused during a send; aiohttp holds the request until the handler is done)."""
    data = pattern(8 * MIB, seed=7)
    (server.assets / "img").write_bytes(data)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.srv.port)
    one = b"GET /assets/img HTTP/1.1\r\nHost: x\r\n\r\n"
    two = b"GET /assets/img HTTP/1.1\r\nHost: x\r\nRange: bytes=5-9\r\n\r\n"
    writer.write(one + two)
    assert b" 200 " in await reader.readuntil(b"\r\n\r\n")
    assert await reader.readexactly(len(data)) == data
    assert b" 206 " in await reader.readuntil(b"\r\n\r\n")
    assert await reader.readexactly(5) == data[5:10]
    writer.close()


class QueuedTransport(asyncio.Transport):
    """A transport with bytes still queued (the headers, when the socket buffer was full)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock

    def get_extra_info(self, name: str, default: object = None) -> object:
        return self.sock if name == "socket" else default

    def get_write_buffer_size(self) -> int:
        return 100

    def is_closing(self) -> bool:
        return False


async def test_bytes_queued_ahead_of_the_body_go_first_through_asyncios_sendfile(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    asked: list[tuple[int, int]] = []

    async def loop_sendfile(transport: object, fobj: object, offset: int, count: int) -> int:
        asked.append((offset, count))
        return count

    monkeypatch.setattr(loop, "sendfile", loop_sendfile)
    (tmp_path / "f").write_bytes(pattern(1000))
    with (tmp_path / "f").open("rb") as f:
        assert await send_file(QueuedTransport(pair[0]), f, 10, 500) == 500
    assert asked == [(10, 500)]
    assert drain(pair[1]) == b""  # nothing went around the queue


async def test_the_watch_fails_a_send_only_after_a_period_without_progress(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path
) -> None:
    (tmp_path / "f").write_bytes(pattern(8 * MIB))
    a, b = pair
    loop = asyncio.get_running_loop()
    with (tmp_path / "f").open("rb") as f:
        sender = _Sender(loop, a.fileno(), f.fileno(), 0, 8 * MIB)
        sender.step()  # fills the socket buffer
        sender.watch(loop, 3600)  # arms the watch (a period that never comes in this test)
        assert sender.watchdog is not None
        sender.watchdog.cancel()
        drain(b)
        sender.step()  # progress since the last look...
        sender.watch(loop, 3600)
        assert not sender.done.done()  # ...so the look passes
        sender.watchdog.cancel()
        sender.watch(loop, 3600)  # no byte since: the client stalled
    with pytest.raises(ClientStalled, match="took nothing for 3600 s"):
        sender.done.result()


async def test_a_client_that_never_reads_again_is_cut_off(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(racker.web.sendfile, "STALL_TIMEOUT", 0.2)
    data = pattern(32 * MIB, seed=8)
    (server.assets / "big").write_bytes(data)
    fds = len(os.listdir("/proc/self/fd"))
    reader, writer, _ = await get(server.srv.port, "/assets/big")
    assert await server.recorded(1) == [("GET", "/assets/big", 200, 0)]  # it gave up...
    got = await asyncio.wait_for(reader.read(), 10)  # ...and closed: what was queued, then EOF
    assert 0 < len(got) < len(data)
    assert got == data[: len(got)]
    writer.close()
    await asyncio.sleep(0.05)
    assert len(os.listdir("/proc/self/fd")) <= fds


async def test_the_asset_path_is_resolved_off_the_event_loop(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """realpath and stat read the disk (a slow or hung mount would stop every server)."""
    threads: list[int] = []
    real = racker.web.handlers.resolve_asset

    def recording(root: Path, rel: str) -> AssetLookup:
        threads.append(threading.get_ident())
        return real(root, rel)

    monkeypatch.setattr(racker.web.handlers, "resolve_asset", recording)
    (server.assets / "k").write_bytes(b"kernel")
    reader, writer, headers = await get(server.srv.port, "/assets/k")
    assert headers[":status"] == "200"
    assert await reader.readexactly(6) == b"kernel"
    writer.close()
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()  # not the loop's thread
