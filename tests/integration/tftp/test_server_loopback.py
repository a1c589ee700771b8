"""Server life cycle on 127.0.0.1 (no namespaces needed): start, refusal to share a port, close."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from racker.config import TftpConfig
from racker.errors import EnvironmentProblem
from racker.events import Event, TftpEvent
from racker.tftp.packets import Data, decode, encode_request
from racker.tftp.server import TftpServer


def make(root: Path, events: list[Event], port: int = 0) -> TftpServer:
    return TftpServer("127.0.0.1", [root], TftpConfig(), 65536, events.append, port=port)


async def test_a_taken_port_is_an_environment_problem(tmp_path: Path) -> None:
    first = make(tmp_path, [])
    await first.start()
    try:
        with pytest.raises(EnvironmentProblem, match=f"127.0.0.1:{first.port}") as info:
            await make(tmp_path, [], port=first.port).start()
        assert info.value.hint is not None
        assert "dnsmasq" in info.value.hint
    finally:
        await first.close()


async def test_close_ends_running_transfers_and_reports_them(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x" * 2000)
    events: list[Event] = []
    server = make(tmp_path, events)
    await server.start()
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.setblocking(False)
        await loop.sock_sendto(client, encode_request(1, "f"), ("127.0.0.1", server.port))  # type: ignore[arg-type]
        first = await asyncio.wait_for(loop.sock_recv(client, 65536), 5)
        assert decode(first) == Data(1, b"x" * 512)
        assert len(server.transfers) == 1
        await server.close()
    assert server.transfers == {}
    kinds = [(e.kind, e.error) for e in events if isinstance(e, TftpEvent)]
    assert kinds == [("transfer-started", ""), ("transfer-failed", "server shut down")]
    assert events[-1].to_dict()["source"] == "tftp"
