"""The boot scripts' fast path (racker.web.fastpath): what it takes, what it hands to aiohttp.

``parse_head`` is pure: a table of request heads and the decision. The protocol is tested on
real loopback connections: an iPXE-like connection (/boot.ipxe, /ipxe, then an asset, which
aiohttp serves after the hand-off), pipelining, Connection: close, idle connections, shutdown.
The property test comparing it with aiohttp is in test_web_fastpath_property.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from racker.events import Event, HttpEvent
from racker.web import BootHttpServer
from racker.web.fastpath import Head, parse_head
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import KNOWN_MAC, StandinCatalog, context_for

HOSTED = b"Host: 10.99.0.1:8080"
IPXE = b"GET /ipxe?mac=52-54-00-aa-00-01&uuid=&platform=efi HTTP/1.1\r\n" + HOSTED

# (case, head, Head or None = hand to aiohttp)
HEADS = [
    ("iPXE's /ipxe", IPXE + b"\r\nConnection: keep-alive",
     Head("/ipxe", "mac=52-54-00-aa-00-01&uuid=&platform=efi", "10.99.0.1:8080", "1.1", True)),
    ("/boot.ipxe, no query", b"GET /boot.ipxe HTTP/1.1\r\n" + HOSTED,
     Head("/boot.ipxe", "", "10.99.0.1:8080", "1.1", True)),
    ("1.1 with close", IPXE + b"\r\nconnection: Close",
     Head("/ipxe", "mac=52-54-00-aa-00-01&uuid=&platform=efi", "10.99.0.1:8080", "1.1", False)),
    ("1.0 closes by default", b"GET /ipxe HTTP/1.0\r\n" + HOSTED,
     Head("/ipxe", "", "10.99.0.1:8080", "1.0", False)),
    ("1.0 with keep-alive", b"GET /ipxe HTTP/1.0\r\n" + HOSTED + b"\r\nConnection: keep-alive",
     Head("/ipxe", "", "10.99.0.1:8080", "1.0", True)),
    ("other headers are fine", IPXE + b"\r\nUser-Agent: iPXE/1.21.1\r\nAccept: */*",
     Head("/ipxe", "mac=52-54-00-aa-00-01&uuid=&platform=efi", "10.99.0.1:8080", "1.1", True)),
    ("another path", b"GET /assets/x HTTP/1.1\r\n" + HOSTED, None),
    ("a path aiohttp would decode", b"GET /ip%78e HTTP/1.1\r\n" + HOSTED, None),
    ("a trailing slash", b"GET /ipxe/ HTTP/1.1\r\n" + HOSTED, None),
    ("HEAD", b"HEAD /ipxe HTTP/1.1\r\n" + HOSTED, None),
    ("POST", b"POST /ipxe HTTP/1.1\r\n" + HOSTED, None),
    ("HTTP/2.0", b"GET /ipxe HTTP/2.0\r\n" + HOSTED, None),
    ("no Host", b"GET /ipxe HTTP/1.1\r\nAccept: */*", None),
    ("two Hosts", IPXE + b"\r\n" + HOSTED, None),
    ("a body", IPXE + b"\r\nContent-Length: 0", None),
    ("chunked", IPXE + b"\r\nTransfer-Encoding: chunked", None),
    ("Expect", IPXE + b"\r\nExpect: 100-continue", None),
    ("an upgrade", IPXE + b"\r\nConnection: Upgrade\r\nUpgrade: websocket", None),
    ("close and keep-alive at once", IPXE + b"\r\nConnection: close, keep-alive", None),
    ("line folding", IPXE + b"\r\nX-A: b\r\n  c", None),
    ("space before the colon", IPXE + b"\r\nX-A : b", None),
    ("a bare LF", IPXE + b"\nX-A: b", None),
    ("a control byte", IPXE + b"\r\nX-A: \x01", None),
    ("non-ASCII", IPXE + b"\r\nX-A: \xc3\xa9", None),
    ("a fragment", b"GET /ipxe?mac=1#x HTTP/1.1\r\n" + HOSTED, None),
    ("a quote in the target", b'GET /ipxe?a="b" HTTP/1.1\r\n' + HOSTED, None),
    ("two spaces", b"GET  /ipxe HTTP/1.1\r\n" + HOSTED, None),
    ("absolute form", b"GET http://10.99.0.1/ipxe HTTP/1.1\r\n" + HOSTED, None),
    ("over-long", IPXE + b"\r\nX-A: " + b"a" * 8200, None),
    ("too many headers", IPXE + b"\r\nX-A: b" * 129, None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "head", "expected"), HEADS, ids=[c[0] for c in HEADS])
def test_parse_head(case: str, head: bytes, expected: Head | None) -> None:
    assert parse_head(head) == expected, case


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[BootHttpServer, list[Event]]]:
    (tmp_path / "vmlinuz").write_bytes(b"K" * 100_000)
    events: list[Event] = []
    srv = BootHttpServer(
        "127.0.0.1",
        0,
        StandinCatalog(),
        context_for,
        key=KEY,
        assets_dir=tmp_path,
        publish=events.append,
        clock=lambda: NOW,
        server_url="http://10.99.0.1:8080",
    )
    await srv.start()
    try:
        yield srv, events
    finally:
        await srv.close()


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def get(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 10.99.0.1:8080\r\n{extra}\r\n".encode()


async def test_an_ipxe_connection_is_handed_to_aiohttp_for_its_assets(served: Any) -> None:
    srv, events = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/boot.ipxe"))
    status, headers, body = await read_response(reader)
    assert (status, headers["content-type"]) == (200, "text/plain; charset=utf-8")
    assert b"chain --autofree http://10.99.0.1:8080/ipxe?mac=${mac:hexhyp}" in body
    writer.write(get("/ipxe?mac=52-54-00-AA-00-01&uuid=&platform=efi"))
    status, _, body = await read_response(reader)
    assert status == 200
    assert body.startswith(b"#!ipxe\nkernel http://10.99.0.1:8080/assets/")
    assert (srv.fast.answered, srv.fast.handed_off) == (2, 0)
    writer.write(get("/assets/vmlinuz", "Range: bytes=0-9\r\n"))
    status, headers, body = await read_response(reader)
    assert (status, body) == (206, b"K" * 10)  # aiohttp's FileResponse, same connection
    writer.write(get("/ipxe?mac=52-54-00-AA-00-01"))  # from now on aiohttp answers everything
    status, _, _ = await read_response(reader)
    assert status == 200
    assert (srv.fast.answered, srv.fast.handed_off) == (2, 1)
    writer.close()
    seen = [(e.path, e.status, e.mac) for e in events if isinstance(e, HttpEvent)]
    assert seen == [
        ("/boot.ipxe", 200, None),
        ("/ipxe", 200, KNOWN_MAC),
        ("/assets/vmlinuz", 206, None),
        ("/ipxe", 200, KNOWN_MAC),
    ]
    metrics = srv.metrics.exposition().decode()
    assert 'racker_http_requests_total{method="GET",route="/ipxe",status="200"} 2.0' in metrics


async def test_pipelined_requests_are_answered_in_order_across_the_hand_off(
    served: Any,
) -> None:
    srv, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(
        get("/ipxe?mac=52-54-00-AA-00-01") + get("/boot.ipxe") + get("/healthz") + get("/nope")
    )
    answers = [await read_response(reader) for _ in range(4)]
    assert [a[0] for a in answers] == [200, 200, 200, 404]
    assert answers[0][2].startswith(b"#!ipxe\nkernel")
    assert answers[1][2].startswith(b"#!ipxe\n# racker first stage")
    assert answers[2][2] == b"ok\n"
    writer.close()


async def test_connection_close_is_honoured(served: Any) -> None:
    srv, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/ipxe?mac=52-54-00-AA-00-01", "Connection: close\r\n") + get("/boot.ipxe"))
    status, headers, _ = await read_response(reader)
    assert (status, headers["connection"]) == (200, "close")
    assert await reader.read() == b""  # closed; the second request is not answered
    writer.close()


async def test_errors_are_answered_like_aiohttp_would(served: Any) -> None:
    srv, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/ipxe?mac=zz") + get("/ipxe?mac=52-54-00-FF-FF-FF"))
    (bad, _, why), (unknown, _, reason) = [await read_response(reader) for _ in range(2)]
    assert (bad, unknown) == (400, 404)
    assert why == b"racker: missing or malformed mac= (chain from /boot.ipxe)\n"
    assert b"no ipxe for 52:54:00:ff:ff:ff" in reason
    assert srv.fast.answered == 2
    writer.close()


async def test_idle_connections_are_closed(served: Any) -> None:
    srv, _ = served
    srv.fast.keepalive_timeout = 0.2
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    await asyncio.sleep(0.1)
    writer.write(get("/boot.ipxe"))  # activity moves the deadline
    await read_response(reader)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed ~0.2 s after the answer
    assert not srv.fast.connections
    writer.close()


async def test_closing_the_server_closes_fast_path_connections(tmp_path: Path) -> None:
    srv = BootHttpServer(
        "127.0.0.1", 0, StandinCatalog(), context_for, key=KEY, assets_dir=tmp_path
    )
    await srv.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/boot.ipxe"))
    await read_response(reader)
    await srv.close()
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()


async def test_idle_connections_last_as_long_on_both_paths(served: Any) -> None:
    srv, _ = served
    assert srv._runner.server._kwargs["keepalive_timeout"] == srv.fast.keepalive_timeout == 75


async def test_a_client_that_does_not_read_is_not_read_either(served: Any) -> None:
    srv, _ = served
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port, limit=1 << 20)
    count = 20000  # ~18 MB of answers: more than the socket buffers and the write high-water
    writer.write(get("/boot.ipxe") * count)
    paused = False
    for _ in range(200):
        await asyncio.sleep(0.01)
        if any(not c.transport.is_reading() for c in srv.fast.connections):
            paused = True
            break
    assert paused, "the server kept reading while its answers piled up"
    bodies = [(await read_response(reader))[0] for _ in range(count)]
    assert bodies == [200] * count and srv.fast.answered == count
    assert all(c.transport.is_reading() for c in srv.fast.connections)  # again, once drained
    writer.close()


async def test_a_failing_answer_is_a_500_and_the_connection_keeps_serving(
    served: Any, caplog: pytest.LogCaptureFixture
) -> None:
    srv, events = served

    def broken(_ask: Any) -> Any:
        raise RuntimeError("a bug")

    srv.fast.svc.ipxe_answer = broken
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(get("/ipxe?mac=52-54-00-AA-00-01") + get("/boot.ipxe"))
    (status, _, body), (after, _, _) = [await read_response(reader) for _ in range(2)]
    assert (status, body, after) == (500, b"500 Internal Server Error\n", 200)
    assert "answering GET /ipxe failed" in caplog.text
    assert [(e.path, e.status) for e in events if isinstance(e, HttpEvent)] == [
        ("/ipxe", 500),
        ("/boot.ipxe", 200),
    ]
    writer.close()


async def test_fast_path_connections_get_the_socket_options_aiohttp_gives_its_own(
    tmp_path: Path,
) -> None:
    """SO_KEEPALIVE (a client gone without a FIN is found out) and TCP_NODELAY, on both paths."""
    options = []
    for fast in (True, False):
        srv = BootHttpServer(
            "127.0.0.1", 0, StandinCatalog(), context_for, key=KEY, assets_dir=tmp_path,
            fast_path=fast,
        )  # fmt: skip
        await srv.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
            writer.write(get("/boot.ipxe"))
            await read_response(reader)
            if fast:
                assert srv.fast.answered == 1
                [connection] = srv.fast.connections
                transport = connection.transport
            else:
                [handler] = srv._runner.server.connections
                transport = handler.transport
            sock = transport.get_extra_info("socket")
            options.append(
                (
                    sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                    sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                )
            )
            writer.close()
        finally:
            await srv.close()
    assert options[0] == options[1] == (1, 1)
