"""UEFI HTTP Boot's first stage: ``GET /NAME`` serves what TFTP would send for NAME, looked up
by the TFTP server's own ``FileRoots`` (operator root first, then the packaged iPXE directory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from yarl import URL

from racker.rack.config import TftpConfig
from racker.tftp.files import configured_roots
from tests.unit.web.helpers import web_client

SECRET = b"root:secret-outside-the-roots\n"
PACKAGED_EFI = bytes(range(256)) * 700  # 179200 bytes, about ipxe.efi's size
SITE_KPXE = b"site undionly.kpxe\n" * 100


@pytest.fixture
def roots(tmp_path: Path) -> TftpConfig:
    (tmp_path / "outside.txt").write_bytes(SECRET)
    (tmp_path / "boot").mkdir()
    (tmp_path / "boot" / "ipxe.efi").write_bytes(PACKAGED_EFI)
    packaged = tmp_path / "ipxe"
    packaged.mkdir()
    # Debian's /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi: a package's link is followed.
    os.symlink(tmp_path / "boot" / "ipxe.efi", packaged / "ipxe.efi")
    (packaged / "undionly.kpxe").write_bytes(b"packaged undionly.kpxe\n")
    site = tmp_path / "tftp"
    (site / "efi").mkdir(parents=True)
    (site / "undionly.kpxe").write_bytes(SITE_KPXE)  # overrides the packaged one
    (site / "efi" / "grub.efi").write_bytes(b"grub\n")
    os.symlink(tmp_path / "outside.txt", site / "escape")  # an operator's link stays inside
    os.mkfifo(site / "fifo")
    return TftpConfig(root=site, ipxe_dir=packaged)


async def test_serves_the_loader_byte_exact_with_head_and_range(
    tmp_path: Path, roots: TftpConfig
) -> None:
    async with web_client(tmp_path, loaders=configured_roots(roots)) as client:
        got = await client.get("/ipxe.efi")
        assert (got.status, await got.read()) == (200, PACKAGED_EFI)
        # EDK2 asks for the size with HEAD first, then GETs (fixtures/firmware, capture 4).
        head = await client.head("/ipxe.efi", headers={"User-Agent": "UefiHttpBoot/1.0"})
        assert head.status == 200
        assert head.headers["Content-Length"] == str(len(PACKAGED_EFI))
        assert await head.read() == b""
        part = await client.get("/ipxe.efi", headers={"Range": "bytes=100-199"})
        assert (part.status, await part.read()) == (206, PACKAGED_EFI[100:200])
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(PACKAGED_EFI)}"
        site = await client.get("/undionly.kpxe")
        assert (site.status, await site.read()) == (200, SITE_KPXE)
        nested = await client.get("/efi/grub.efi")
        assert (nested.status, await nested.read()) == (200, b"grub\n")
        # The routes before it are not shadowed.
        assert (await client.get("/healthz")).status == 200


CORPUS = [
    "/../outside.txt",
    "/%2e%2e/outside.txt",
    "/efi/%2e%2e/%2e%2e/outside.txt",
    "/..%2foutside.txt",
    "/..%5coutside.txt",
    "/efi%5c..%5c..%5coutside.txt",
    "/escape",
    "/fifo",
    "/efi",
    "/efi/",
    "/missing.efi",
    "/ipxe.efi%00",
    "/%252e%252e/outside.txt",
]


@pytest.mark.parametrize("raw", CORPUS)
async def test_refuses_traversal_links_out_and_non_files(
    tmp_path: Path, roots: TftpConfig, raw: str
) -> None:
    async with web_client(tmp_path, loaders=configured_roots(roots)) as client:
        url = URL.build(scheme="http", host="127.0.0.1", port=client.port, path=raw, encoded=True)
        resp = await client.session.get(url)
        body = await resp.read()
    assert resp.status in (400, 404), raw
    assert SECRET not in body


async def test_without_loaders_nothing_but_the_routes_is_served(
    tmp_path: Path, roots: TftpConfig
) -> None:
    async with web_client(tmp_path) as client:
        assert (await client.get("/ipxe.efi")).status == 404


async def test_the_boot_policy_applies_as_it_does_to_tftp(
    tmp_path: Path, roots: TftpConfig
) -> None:
    # An installed node (its boot action is not PXE) gets no loader over HTTP either; the
    # test client connects from 127.0.0.1.
    asked: list[str] = []

    def installed(ip: str) -> bool:
        asked.append(ip)
        return ip != "127.0.0.1"

    async with web_client(
        tmp_path, loaders=configured_roots(roots), loader_policy=installed
    ) as client:
        got = await client.get("/ipxe.efi")
        assert got.status == 403
        assert PACKAGED_EFI[:64] not in await got.read()
        assert (await client.head("/ipxe.efi")).status == 403
        assert (await client.get("/healthz")).status == 200  # the other routes are not asked
    assert asked == ["127.0.0.1", "127.0.0.1"]

    def broken(ip: str) -> bool:
        raise RuntimeError("policy failed")

    async with web_client(
        tmp_path, loaders=configured_roots(roots), loader_policy=broken
    ) as client:
        assert (await client.get("/ipxe.efi")).status == 403  # fails closed, as TFTP's
    async with web_client(
        tmp_path, loaders=configured_roots(roots), loader_policy=lambda ip: True
    ) as client:
        got = await client.get("/ipxe.efi")
        assert (got.status, await got.read()) == (200, PACKAGED_EFI)
