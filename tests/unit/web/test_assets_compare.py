"""racker's asset responses are aiohttp FileResponse's, byte for byte but for the Date.

Two servers in one event loop: racker's ``BootHttpServer`` (``/assets/...`` answered by
``AssetResponse``, its body sent by ``racker.web.sendfile``) and a bare aiohttp application
answering the same path with ``web.FileResponse`` (the reference: asyncio's ``loop.sendfile``).
Hypothesis sends both the same 1-3 requests on one kept-alive connection (GET or HEAD, with
ranges, conditionals, both, and malformed ones) and compares status, headers (but Date) and
body of every response, and whether the connection stays open. The files: an odd-sized one
of a few hundred KiB (so a body takes several socket-buffer fills), one byte, empty.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import racker.web.handlers
from racker.web import BootHttpServer
from racker.web.assets import resolve_asset
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import StandinCatalog, context_for

MTIME = 1_600_000_000
FILES = {"big.img": 300 * 1024 + 7, "one": 1, "empty": 0, "k.gz": 5000}
SIZE = FILES["big.img"]
ETAG = f'"{MTIME * 10**9:x}-{SIZE:x}"'


def http_date(t: float) -> str:
    return email.utils.formatdate(t, usegmt=True)


NUMBERS = st.one_of(st.integers(0, SIZE + 10), st.sampled_from([0, 1, SIZE - 1, SIZE, 2**40]))
RANGES = st.one_of(
    st.tuples(NUMBERS, NUMBERS).map(lambda ab: f"bytes={ab[0]}-{ab[1]}"),
    NUMBERS.map(lambda a: f"bytes={a}-"),
    NUMBERS.map(lambda n: f"bytes=-{n}"),
    st.sampled_from(["bytes=0-1,5-6", "bytes=", "items=0-1", "bytes=a-b", "bytes=-", "bytes=--1"]),
)
ETAGS = st.sampled_from([ETAG, f"W/{ETAG}", '"other"', "*", f'"x", {ETAG}', "garbage"])
DATES = st.sampled_from(
    [http_date(MTIME - 10), http_date(MTIME), http_date(MTIME + 10), "not a date"]
)
HEADER = st.one_of(
    RANGES.map("Range: {}".format),
    ETAGS.map("If-None-Match: {}".format),
    ETAGS.map("If-Match: {}".format),
    DATES.map("If-Modified-Since: {}".format),
    DATES.map("If-Unmodified-Since: {}".format),
    st.one_of(DATES, ETAGS).map("If-Range: {}".format),
    st.sampled_from(["Accept-Encoding: gzip, br", "Connection: close", "User-Agent: iPXE/1.21"]),
)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "GET", "GET", "HEAD"]))
    name = draw(st.sampled_from(["big.img", "big.img", "big.img", "one", "empty", "k.gz"]))
    headers = draw(st.lists(HEADER, max_size=3, unique_by=lambda h: h.split(":")[0]))
    lines = [f"{method} /assets/{name} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


Response = tuple[int, bytes, tuple[tuple[str, str], ...]]


async def exchange(port: int, batch: list[bytes]) -> tuple[list[Response], bool]:
    """The requests one after the other on one connection; the responses, and whether the
    server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses: list[Response] = []
    closed = False
    try:
        for data in batch:
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            lines = head.decode("latin-1").split("\r\n")
            pairs = [x.partition(":") for x in lines[1:] if x]
            headers = tuple(sorted((k.lower(), v.strip()) for k, _, v in pairs))
            body = b"" if data.startswith(b"HEAD ") else await read_body(reader, dict(headers))
            kept = tuple(h for h in headers if h[0] != "date")
            responses.append((int(lines[0].split()[1]), body, kept))
        closed = await asyncio.wait_for(reader.read(1), 0.02) == b""
    except (asyncio.IncompleteReadError, ConnectionError):
        closed = True
    except TimeoutError:
        pass  # still open
    writer.close()
    return responses, closed


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding") != "chunked":  # aiohttp's 416 and 412 are chunked
        return await reader.readexactly(int(headers.get("content-length", "0")))
    body = b""
    while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
        body += (await reader.readexactly(size + 2))[:-2]
    await reader.readuntil(b"\r\n")
    return body


@dataclass
class Servers:
    loop: asyncio.AbstractEventLoop
    ours: int  # port
    reference: int  # port
    sent: list[int]  # the counts racker's send_file was asked for
    min_sent: int = 40  # checked at the end: the sender did send that many bodies


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    for name, size in FILES.items():
        (tmp_path / name).write_bytes(bytes((i * 13 + 5) % 256 for i in range(size)))
        os.utime(tmp_path / name, (MTIME, MTIME))
    (tmp_path / "k.gz.gz").write_bytes(b"compressed twin")  # FileResponse's Accept-Encoding rule
    sent: list[int] = []
    real_send_file = racker.web.handlers.send_file

    async def counting(transport: asyncio.Transport, fobj: IO[Any], offset: int, n: int) -> int:
        sent.append(n)
        return await real_send_file(transport, fobj, offset, n)

    monkeypatch.setattr(racker.web.handlers, "send_file", counting)

    async def reference(request: web.Request) -> web.StreamResponse:
        found = resolve_asset(tmp_path, request.match_info["path"])
        assert found.path is not None
        return web.FileResponse(found.path)

    loop = asyncio.new_event_loop()
    ours = BootHttpServer(
        "127.0.0.1", 0, StandinCatalog(), context_for, key=KEY, assets_dir=tmp_path,
        clock=lambda: NOW,
    )  # fmt: skip
    loop.run_until_complete(ours.start())
    app = web.Application()
    app.router.add_get("/assets/{path:.*}", reference)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    port = runner.addresses[0][1]
    made = Servers(loop, ours.port, port, sent)
    try:
        yield made
    finally:
        loop.run_until_complete(ours.close())
        loop.run_until_complete(runner.cleanup())
        loop.close()
    # The comparison means something only if racker's sender sent many of the bodies.
    assert len(sent) >= made.min_sent, sent


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(requests(), min_size=1, max_size=3))
def test_assets_answer_as_aiohttps_file_response_does(servers: Servers, batch: list[bytes]) -> None:
    got = servers.loop.run_until_complete(exchange(servers.ours, batch))
    want = servers.loop.run_until_complete(exchange(servers.reference, batch))
    assert got == want, batch


def test_the_compressed_twin_and_a_plain_range_are_in_the_corpus(servers: Servers) -> None:
    """Two answers the property test must be able to produce, checked once by hand."""
    servers.min_sent = 2
    loop, ours, reference = servers.loop, servers.ours, servers.reference
    gz = b"GET /assets/k.gz HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"
    part = b"GET /assets/big.img HTTP/1.1\r\nHost: x\r\nRange: bytes=100-299\r\n\r\n"
    for port in (ours, reference):
        (full, ranged), _ = loop.run_until_complete(exchange(port, [gz, part]))
        assert full[1] == b"compressed twin"
        assert ranged[0] == 206 and len(ranged[1]) == 200
