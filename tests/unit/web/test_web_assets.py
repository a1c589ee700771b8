"""The asset mirror: what is served, what is refused (a traversal corpus), and HTTP caching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from yarl import URL

from racker.events import Event, HttpEvent
from racker.web.assets import check_relative, resolve_asset
from tests.unit.web.helpers import web_client

SECRET = b"root:secret-outside-the-mirror\n"
KERNEL = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_bytes(SECRET)
    root = tmp_path / "assets"
    (root / "flatcar").mkdir(parents=True)
    (root / "flatcar" / "vmlinuz").write_bytes(KERNEL)
    (root / ".hidden").write_bytes(SECRET)
    (root / "flatcar" / ".secret").write_bytes(SECRET)
    (root / "empty").write_bytes(b"")
    os.symlink(tmp_path / "outside.txt", root / "escape")
    os.symlink("../outside.txt", root / "flatcar" / "relescape")
    os.symlink("..", root / "up")
    os.symlink("flatcar/vmlinuz", root / "current")  # inside the mirror: allowed
    os.symlink(".hidden", root / "to-dotfile")
    os.mkfifo(root / "fifo")
    return root


# Raw (already percent-encoded) request paths that must never yield a file.
CORPUS = [
    "/assets/../outside.txt",
    "/assets/%2e%2e/outside.txt",
    "/assets/%2E%2E/outside.txt",
    "/assets/..%2foutside.txt",
    "/assets/..%2Foutside.txt",
    "/assets/flatcar/../../outside.txt",
    "/assets/flatcar/%2e%2e/%2e%2e/outside.txt",
    "/assets/.%2e/outside.txt",
    "/assets/..%5coutside.txt",
    "/assets/flatcar%5c..%5c..%5coutside.txt",
    "/assets/flatcar\\..\\..\\outside.txt",
    "/assets/flatcar/vmlinuz%00.txt",
    "/assets/flatcar%00/vmlinuz",
    "/assets//etc/passwd",
    "/assets/%2fetc/passwd",
    "/assets/%2Fetc%2Fpasswd",
    "/assets/escape",
    "/assets/flatcar/relescape",
    "/assets/up/outside.txt",
    "/assets/to-dotfile",
    "/assets/.hidden",
    "/assets/flatcar/.secret",
    "/assets/flatcar/./vmlinuz",
    "/assets/flatcar",
    "/assets/flatcar/",
    "/assets/",
    "/assets/fifo",
    "/assets/missing",
    "/assets/%252e%252e/outside.txt",
    "/assets/..%c0%afoutside.txt",
]


@pytest.mark.parametrize("raw", CORPUS)
async def test_traversal_corpus_is_refused(mirror: Path, raw: str) -> None:
    async with web_client(mirror) as client:
        url = URL.build(scheme="http", host="127.0.0.1", port=client.port, path=raw, encoded=True)
        resp = await client.session.get(url)
        body = await resp.read()
    assert resp.status == 404, raw
    assert SECRET not in body


@pytest.mark.parametrize(
    ("rel", "problem"),
    [
        ("flatcar/vmlinuz", ""),
        ("a:b/c d+e", ""),
        ("", "empty path"),
        ("/etc/passwd", "empty segment or absolute path"),
        ("a//b", "empty segment or absolute path"),
        ("..", "dot segment or dotfile"),
        ("a/../b", "dot segment or dotfile"),
        (".git/config", "dot segment or dotfile"),
        ("a\\b", "backslash or control character"),
        ("a\x00b", "backslash or control character"),
        ("a\nb", "backslash or control character"),
        ("a" * 1025, "path too long"),
    ],
)
def test_check_relative(rel: str, problem: str) -> None:
    assert check_relative(rel) == problem


def test_symlink_inside_the_mirror_resolves_to_its_target(mirror: Path) -> None:
    found = resolve_asset(mirror, "current")
    assert found.path == (mirror / "flatcar" / "vmlinuz").resolve()
    assert resolve_asset(mirror, "escape").reason == "resolves outside the mirror"
    assert resolve_asset(mirror, "to-dotfile").reason == "resolves to a dotfile"
    assert resolve_asset(mirror, "fifo").reason == "not a regular file"


async def test_serves_a_file_with_validators(mirror: Path) -> None:
    async with web_client(mirror) as client:
        resp = await client.get("/assets/flatcar/vmlinuz")
        assert resp.status == 200
        assert await resp.read() == KERNEL
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.headers["Content-Length"] == str(len(KERNEL))
        assert "Last-Modified" in resp.headers
        etag = resp.headers["ETag"]
        linked = await client.get("/assets/current")
        assert await linked.read() == KERNEL
        empty = await client.get("/assets/empty")
        assert (empty.status, await empty.read()) == (200, b"")

        again = await client.get("/assets/flatcar/vmlinuz", headers={"If-None-Match": etag})
        assert again.status == 304
        assert await again.read() == b""
        changed = await client.get("/assets/flatcar/vmlinuz", headers={"If-None-Match": '"x"'})
        assert changed.status == 200


@pytest.mark.parametrize(
    ("range_", "status", "body", "content_range"),
    [
        ("bytes=0-99", 206, KERNEL[:100], f"bytes 0-99/{len(KERNEL)}"),
        ("bytes=10000-", 206, KERNEL[10000:], f"bytes 10000-10239/{len(KERNEL)}"),
        ("bytes=-40", 206, KERNEL[-40:], f"bytes 10200-10239/{len(KERNEL)}"),
        ("bytes=20000-", 416, b"", f"bytes */{len(KERNEL)}"),
    ],
)
async def test_range_requests(
    mirror: Path, range_: str, status: int, body: bytes, content_range: str
) -> None:
    async with web_client(mirror) as client:
        resp = await client.get("/assets/flatcar/vmlinuz", headers={"Range": range_})
        assert resp.status == status
        assert resp.headers["Content-Range"] == content_range
        if status == 206:
            assert await resp.read() == body


async def test_head_sends_headers_only_and_counts_no_bytes(mirror: Path) -> None:
    events: list[Event] = []
    async with web_client(mirror, events) as client:
        resp = await client.head("/assets/flatcar/vmlinuz")
        assert resp.status == 200
        assert resp.headers["Content-Length"] == str(len(KERNEL))
        assert await resp.read() == b""
        await client.get("/assets/flatcar/vmlinuz", headers={"Range": "bytes=0-99"})
    http = [(e.method, e.status, e.bytes) for e in events if isinstance(e, HttpEvent)]
    assert http == [("HEAD", 200, 0), ("GET", 206, 100)]
