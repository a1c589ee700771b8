"""The server accepts connections itself (``_Acceptor``): many at once, on both event loops,
and a failing accept (out of file descriptors) pauses accepting instead of spinning."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path
from typing import Any

import pytest
import uvloop

from racker.web import BootHttpServer
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import KNOWN_MAC, StandinCatalog, context_for

REQUEST = f"GET /ipxe?mac={KNOWN_MAC} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()


def server(tmp_path: Path) -> BootHttpServer:
    return BootHttpServer(
        "127.0.0.1",
        0,
        StandinCatalog(),
        context_for,
        key=KEY,
        assets_dir=tmp_path,
        clock=lambda: NOW,
    )


async def fetch(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    data = await reader.read()
    writer.close()
    return data


async def burst(tmp_path: Path, count: int) -> list[bytes]:
    srv = server(tmp_path)
    await srv.start()
    try:
        return await asyncio.gather(*(fetch(srv.port) for _ in range(count)))
    finally:
        await srv.close()


@pytest.mark.parametrize("factory", [asyncio.new_event_loop, uvloop.new_event_loop])
def test_two_hundred_connections_at_once_are_all_answered(tmp_path: Path, factory: Any) -> None:
    with asyncio.Runner(loop_factory=factory) as runner:
        answers = runner.run(burst(tmp_path, 200))
    assert all(a.startswith(b"HTTP/1.1 200") and b"#!ipxe" in a for a in answers)


class FailingOnce:
    """A listening socket whose first accept() fails like a process out of descriptors."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.failures = 0

    def accept(self) -> tuple[socket.socket, Any]:
        if not self.failures:
            self.failures += 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


async def test_an_accept_failure_pauses_then_serves(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    srv = server(tmp_path)
    await srv.start()
    try:
        assert srv._acceptor is not None
        failing = FailingOnce(srv._acceptor._sock)
        srv._acceptor._sock = failing  # type: ignore[assignment]
        answer = await asyncio.wait_for(fetch(srv.port), 30)
    finally:
        await srv.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert failing.failures == 1
    assert "accepting a connection failed" in caplog.text
