"""Server life cycle on 127.0.0.1 (no namespaces needed): start, refusal to share a port, close."""

from __future__ import annotations

import asyncio
import os
import socket
from importlib.util import find_spec
from pathlib import Path

import pytest

from racker.errors import EnvironmentProblem
from racker.events import Event, TftpEvent
from racker.tftp.packets import Data, Error, decode, encode_ack, encode_error, encode_request
from racker.tftp.server import TftpServer
from racker.tftp.settings import TftpSettings
from racker.tftp.transfer import TransferLimits, max_blksize_for_mtu
from tests.integration.tftp.client import fetch


def make(root: Path, events: list[Event], port: int = 0) -> TftpServer:
    limits = TransferLimits(max_blksize=max_blksize_for_mtu(65536))
    return TftpServer("127.0.0.1", TftpSettings((root,), limits=limits), events.append, port=port)


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


def stranger_scenario(port: int, body: bytes) -> None:
    """A transfer from one socket while another one pokes its port (RFC 1350 section 4)."""
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as owner,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        owner.settimeout(5)
        stranger.settimeout(5)
        owner.sendto(encode_request(1, "f"), ("127.0.0.1", port))  # type: ignore[arg-type]
        first, transfer = owner.recvfrom(65536)
        assert decode(first) == Data(1, body[:512])
        stranger.sendto(encode_ack(1), transfer)
        assert decode(stranger.recv(100)) == Error(5, "Unknown transfer ID")
        owner.sendto(encode_ack(1), transfer)
        assert decode(owner.recv(65536)) == Data(2, body[512:1024])
        owner.sendto(encode_error(8, "enough"), transfer)


@pytest.mark.parametrize(
    "loop_kind",
    [
        "asyncio",
        # The benchmark also runs the server under uvloop (libuv's loop is much cheaper per
        # wake-up); the transfer sockets and the guard must behave the same there.
        pytest.param(
            "uvloop",
            marks=pytest.mark.skipif(find_spec("uvloop") is None, reason="uvloop not installed"),
        ),
    ],
)
def test_transfers_and_strangers_under_each_event_loop(tmp_path: Path, loop_kind: str) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    root.mkdir()
    body = os.urandom(300_000)  # 586 blocks at 512: crosses the 64 KiB read-ahead twice
    (root / "f").write_bytes(body)

    async def scenario() -> None:
        server = make(root, [])
        await server.start()
        try:
            for options in ((), (("blksize", "1468"), ("windowsize", "16"))):
                result = await asyncio.to_thread(
                    fetch, "127.0.0.1", "f", str(out), port=server.port, options=options
                )
                assert result.error == ""
                assert out.read_bytes() == body
            await asyncio.to_thread(stranger_scenario, server.port, body)
        finally:
            await server.close()

    if loop_kind == "uvloop":
        import uvloop

        uvloop.run(scenario())
    else:
        asyncio.run(scenario())
