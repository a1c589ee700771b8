"""Asset downloads with curl as the real client, over a veth link between two namespaces.

What racker.web.sendfile must get right with a client nobody on this team wrote: whole files
and ranges byte for byte, HEAD and the conditional requests, a client that gives up
mid-file, one that reads slowly (rate-limited), many at once, and a file replaced or cut
short on disk while it is being downloaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from racker.events import Event, HttpEvent
from racker.web import BootHttpServer
from tests.support.netns import Link, entered, link
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import StandinCatalog, context_for

pytestmark = [pytest.mark.root, pytest.mark.slow]

SERVER_IP, CLIENT_IP = "10.99.0.1", "10.99.0.64"
MIB = 1 << 20
SIZE = 24 * MIB + 4099  # odd: ranges end mid-page
MTIME = 1_600_000_000


def pattern(size: int, seed: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


@dataclass
class Rig:
    link: Link
    base: str
    assets: Path
    blob: bytes
    events: list[Event]

    def url(self, name: str = "img") -> str:
        return f"{self.base}/assets/{name}"

    async def start_curl(self, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.link.client.name, "curl", "-sS", "--max-time", "60",
            *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip

    async def curl(self, *args: str) -> tuple[int, bytes, bytes]:
        proc = await self.start_curl(*args)
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out, err

    async def status(self, *args: str) -> bytes:
        """The HTTP status of a curl run that must succeed."""
        code, out, err = await self.curl("-w", "%{http_code}", *args)
        assert code == 0, err
        return out

    async def requests(self, count: int) -> list[tuple[str, int, int]]:
        """The server's request records, once there are ``count`` of them."""
        for _ in range(1000):
            found = [(e.method, e.status, e.bytes) for e in self.events if isinstance(e, HttpEvent)]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)
        return found


@pytest.fixture
def veth() -> Iterator[Link]:
    with link(server_ip=SERVER_IP, client_ip=CLIENT_IP) as lk:
        yield lk


@pytest.fixture
async def rig(veth: Link, tmp_path: Path) -> AsyncIterator[Rig]:
    assets = tmp_path / "assets"
    assets.mkdir()
    blob = pattern(SIZE, 1)
    (assets / "img").write_bytes(blob)
    os.utime(assets / "img", (MTIME, MTIME))
    with entered(veth.server.name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((SERVER_IP, 8080))
    events: list[Event] = []
    server = BootHttpServer(
        SERVER_IP, 8080, StandinCatalog(), context_for, sock=sock, key=KEY, assets_dir=assets,
        publish=events.append, clock=lambda: NOW,
    )  # fmt: skip
    await server.start()
    try:
        yield Rig(veth, f"http://{SERVER_IP}:8080", assets, blob, events)
    finally:
        await server.close()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_whole_file_ranges_and_head(rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "got"
    code, status, _ = await rig.curl("-o", str(out), "-w", "%{http_code}", rig.url())
    assert (code, status) == (0, b"200")
    assert digest(out.read_bytes()) == digest(rig.blob)
    for spec, start, end in [
        ("0-0", 0, 1),
        ("4095-8191", 4095, 8192),
        (f"{SIZE - 100}-", SIZE - 100, SIZE),
        ("-5000", SIZE - 5000, SIZE),
        (f"{MIB}-{20 * MIB}", MIB, 20 * MIB + 1),
    ]:
        code, status, _ = await rig.curl(
            "-r", spec, "-o", str(out), "-w", "%{http_code}", rig.url()
        )
        assert (code, status) == (0, b"206"), spec
        assert out.read_bytes() == rig.blob[start:end], spec
    code, head, _ = await rig.curl("-I", rig.url())
    assert head.startswith(b"HTTP/1.1 200")
    assert f"Content-Length: {SIZE}\r\n".encode() in head
    assert b"Last-Modified: Sun, 13 Sep 2020 12:26:40 GMT\r\n" in head
    recorded = await rig.requests(7)
    assert recorded[0] == ("GET", 200, SIZE)
    assert recorded[1:6] == [("GET", 206, n) for n in (1, 4097, 100, 5000, 19 * MIB + 1)]
    assert recorded[6] == ("HEAD", 200, 0)


async def test_conditional_requests(rig: Rig, tmp_path: Path) -> None:
    etag = tmp_path / "etag"
    code, _, _ = await rig.curl("--etag-save", str(etag), "-o", "/dev/null", rig.url())
    assert code == 0
    code, status, _ = await rig.curl(
        "--etag-compare", str(etag), "-o", "/dev/null", "-w", "%{http_code}", rig.url()
    )
    assert status == b"304"
    code, status, _ = await rig.curl(
        "-H", 'If-None-Match: "stale"', "-o", "/dev/null", "-w", "%{http_code}", rig.url()
    )
    assert status == b"200"
    newer, older = tmp_path / "newer", tmp_path / "older"
    newer.write_bytes(b"")
    older.write_bytes(b"")
    os.utime(older, (MTIME - 60, MTIME - 60))
    for stamp, want in ((newer, b"304"), (older, b"200")):
        code, status, _ = await rig.curl(
            "-z", str(stamp), "-o", "/dev/null", "-w", "%{http_code}", rig.url()
        )
        assert status == want, stamp


async def test_a_client_that_gives_up_mid_file_and_a_slow_one(rig: Rig, tmp_path: Path) -> None:
    # Rate-limited to 4 MiB/s with 1 s allowed: curl gives up after a few MiB (exit 28).
    code, _, _ = await rig.curl(
        "--limit-rate", "4M", "--max-time", "1", "-o", "/dev/null", rig.url()
    )
    assert code == 28
    assert (await rig.requests(1))[0] == ("GET", 200, 0)  # cut short: no body counted
    # A slow reader gets every byte (the server waits on it, it does not give up or buffer).
    out = tmp_path / "slow"
    code, status, _ = await rig.curl(
        "--limit-rate", "12M", "-o", str(out), "-w", "%{http_code}", rig.url()
    )
    assert (code, status) == (0, b"200")
    assert digest(out.read_bytes()) == digest(rig.blob)
    assert await rig.status("-o", "/dev/null", f"{rig.base}/healthz") == b"200"


async def test_twenty_clients_at_once(rig: Rig, tmp_path: Path) -> None:
    outs = [tmp_path / f"out{i}" for i in range(20)]
    procs = [await rig.start_curl("-o", str(out), rig.url()) for out in outs]
    codes = [await proc.wait() for proc in procs]
    assert codes == [0] * 20
    want = digest(rig.blob)
    assert [digest(out.read_bytes()) for out in outs] == [want] * 20
    assert await rig.requests(20) == [("GET", 200, SIZE)] * 20


async def until_written(path: Path, size: int) -> None:
    for _ in range(1000):
        if path.exists() and path.stat().st_size >= size:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} never reached {size} bytes")


async def test_a_file_replaced_during_a_download(rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "got"
    proc = await rig.start_curl("--limit-rate", "24M", "-o", str(out), rig.url())
    await until_written(out, 2 * MIB)
    new = pattern(3 * MIB, 2)
    (rig.assets / "img.tmp").write_bytes(new)
    os.replace(rig.assets / "img.tmp", rig.assets / "img")  # how a mirror update lands
    assert await proc.wait() == 0
    assert digest(out.read_bytes()) == digest(rig.blob)  # the download in flight: the old file
    code, _, _ = await rig.curl("-o", str(out), rig.url())
    assert code == 0
    assert out.read_bytes() == new


async def test_a_file_cut_short_during_a_download(rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "got"
    proc = await rig.start_curl("--limit-rate", "24M", "-o", str(out), rig.url())
    await until_written(out, 2 * MIB)
    os.truncate(rig.assets / "img", 8 * MIB)  # rewritten in place
    _, err = await proc.communicate()
    # curl 18: "transfer closed with N bytes remaining": the server closed, it did not hang.
    assert proc.returncode == 18, err
    got = out.read_bytes()
    assert len(got) < SIZE
    assert got == rig.blob[: len(got)]
    assert await rig.status("-o", "/dev/null", f"{rig.base}/healthz") == b"200"
