"""The boot HTTP server on a veth link, fetched with curl from a client namespace.

The server's socket is created inside the server namespace (``entered``); the asyncio loop
stays in the test thread, and curl runs in the client namespace as an asyncio subprocess so the
loop keeps serving while it waits.
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

from racker.web import BootHttpServer
from racker.web.tokens import make_token
from tests.support.netns import Link, entered, link
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import KNOWN_MAC, StandinCatalog, context_for

pytestmark = pytest.mark.root

SERVER_IP, CLIENT_IP = "10.99.0.1", "10.99.0.64"
SIZE = 3 * 1024 * 1024 + 17  # a few MiB, odd size: ranges end mid-page


@dataclass
class Rig:
    link: Link
    base: str
    assets: Path
    blob: bytes

    async def curl(self, *args: str) -> tuple[int, bytes, bytes]:
        proc = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            self.link.client.name,
            "curl",
            "-sS",
            "--max-time",
            "20",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
        assert proc.returncode is not None
        return proc.returncode, out, err


@pytest.fixture
def veth() -> Iterator[Link]:
    with link(server_ip=SERVER_IP, client_ip=CLIENT_IP) as lk:
        yield lk


def _listen(lk: Link) -> socket.socket:
    with entered(lk.server.name):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((SERVER_IP, 8080))
    return sock


@pytest.fixture
async def rig(veth: Link, tmp_path: Path) -> AsyncIterator[Rig]:
    assets = tmp_path / "assets"
    assets.mkdir()
    blob = bytes((i * 7 + 3) % 251 for i in range(SIZE))
    (assets / "flatcar_production_pxe.vmlinuz").write_bytes(blob)
    # An mtime on a whole second, well in the past: If-Modified-Since has 1 s resolution.
    os.utime(assets / "flatcar_production_pxe.vmlinuz", (1_600_000_000, 1_600_000_000))
    server = BootHttpServer(
        SERVER_IP,
        8080,
        StandinCatalog(),
        context_for,
        sock=_listen(veth),
        key=KEY,
        assets_dir=assets,
        clock=lambda: NOW,
        bind_to_lease=True,
        address_of={KNOWN_MAC: CLIENT_IP}.get,
    )
    await server.start()
    try:
        yield Rig(veth, f"http://{SERVER_IP}:8080", assets, blob)
    finally:
        await server.close()


async def test_full_download_and_head(rig: Rig, tmp_path: Path) -> None:
    out = tmp_path / "got"
    url = f"{rig.base}/assets/flatcar_production_pxe.vmlinuz"
    code, status, _ = await rig.curl("-o", str(out), "-w", "%{http_code}", url)
    assert (code, status) == (0, b"200")
    assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(rig.blob).digest()

    code, headers, _ = await rig.curl("-I", url)
    lines = {
        k.strip().lower(): v.strip()
        for k, _, v in (h.partition(":") for h in headers.decode().splitlines()[1:])
        if v
    }
    assert headers.startswith(b"HTTP/1.1 200")
    assert lines["content-length"] == str(SIZE)
    assert lines["accept-ranges"] == "bytes"
    assert lines["etag"].startswith('"')
    assert "last-modified" in lines


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [("0-0", 0, 1), ("4095-8191", 4095, 8192), (f"{SIZE - 100}-", SIZE - 100, SIZE)],
)
async def test_range(rig: Rig, tmp_path: Path, spec: str, start: int, end: int) -> None:
    out = tmp_path / "part"
    url = f"{rig.base}/assets/flatcar_production_pxe.vmlinuz"
    code, status, _ = await rig.curl("-r", spec, "-o", str(out), "-w", "%{http_code}", url)
    assert (code, status) == (0, b"206")
    assert out.read_bytes() == rig.blob[start:end]


async def test_unsatisfiable_range(rig: Rig) -> None:
    url = f"{rig.base}/assets/flatcar_production_pxe.vmlinuz"
    code, status, _ = await rig.curl("-r", f"{SIZE}-", "-o", "/dev/null", "-w", "%{http_code}", url)
    assert (code, status) == (0, b"416")


async def test_etag_and_if_modified_since(rig: Rig, tmp_path: Path) -> None:
    url = f"{rig.base}/assets/flatcar_production_pxe.vmlinuz"
    etag = tmp_path / "etag"
    await rig.curl("--etag-save", str(etag), "-o", "/dev/null", url)
    assert etag.read_text().startswith('"')
    code, status, _ = await rig.curl(
        "--etag-compare", str(etag), "-o", "/dev/null", "-w", "%{http_code}", url
    )
    assert (code, status) == (0, b"304")
    stamp = tmp_path / "stamp"
    stamp.write_bytes(b"")  # mtime now: newer than the asset
    code, status, _ = await rig.curl("-z", str(stamp), "-o", "/dev/null", "-w", "%{http_code}", url)
    assert status == b"304"


async def test_ignition_is_bound_to_the_leased_address(rig: Rig) -> None:
    token = make_token(KEY, KNOWN_MAC, "ignition", int(NOW) + 60)
    url = f"{rig.base}/ignition?mac={KNOWN_MAC}&token={token}"
    code, body, _ = await rig.curl("-w", "\n%{http_code}", url)
    assert (code, body.endswith(b"\n200")) == (0, True)
    # The same request from the server's own address (not the lease) is refused.
    proc = await asyncio.create_subprocess_exec(
        "ip",
        "netns",
        "exec",
        rig.link.server.name,
        "curl",
        "-sS",
        "-w",
        "\n%{http_code}",
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert out.endswith(b"\n403")
    assert b"bind_to_lease" in out
