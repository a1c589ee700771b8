"""Filename resolution: normalisation, traversal refusals, symlinks, two roots, shared sources."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from racker.tftp.admission import FileRefused
from racker.tftp.files import FileRoots, split_filename
from racker.tftp.packets import ErrorCode


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("undionly.kpxe", ("undionly.kpxe",)),
        ("/undionly.kpxe", ("undionly.kpxe",)),
        ("./a/./b", ("a", "b")),
        ("\\Boot\\x64\\wdsnbp.com", ("Boot", "x64", "wdsnbp.com")),
        ("a//b/", ("a", "b")),
        ("%2e%2e/etc/passwd", ("%2e%2e", "etc", "passwd")),  # no URL decoding: a literal name
    ],
)
def test_split_filename(name: str, parts: tuple[str, ...]) -> None:
    assert split_filename(name) == parts


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("../etc/passwd", ErrorCode.ACCESS_VIOLATION),
        ("..\\..\\etc\\passwd", ErrorCode.ACCESS_VIOLATION),
        ("a/../../b", ErrorCode.ACCESS_VIOLATION),
        ("/..", ErrorCode.ACCESS_VIOLATION),
        ("a\0b", ErrorCode.ACCESS_VIOLATION),
        ("a\nb", ErrorCode.ACCESS_VIOLATION),
        ("x" * 1025, ErrorCode.ACCESS_VIOLATION),
        ("/", ErrorCode.FILE_NOT_FOUND),
        ("./.", ErrorCode.FILE_NOT_FOUND),
    ],
)
def test_split_filename_refuses(name: str, code: ErrorCode) -> None:
    with pytest.raises(FileRefused) as info:
        split_filename(name)
    assert info.value.code == code


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path, Path]:
    site, ipxe, outside = tmp_path / "site", tmp_path / "ipxe", tmp_path / "outside"
    for d in (site, ipxe, outside):
        d.mkdir()
    (ipxe / "undionly.kpxe").write_bytes(b"packaged")
    (ipxe / "ipxe.efi").write_bytes(b"packaged efi")
    (site / "ipxe.efi").write_bytes(b"site override")
    (site / "Boot").mkdir()
    (site / "Boot" / "BCD").write_bytes(b"bcd")
    (outside / "secret").write_bytes(b"secret")
    (site / "escape").symlink_to(outside / "secret")
    (site / "escape-dir").symlink_to(outside)
    (site / "inside-link").symlink_to(site / "Boot" / "BCD")
    (site / "dangling").symlink_to(site / "nothing")
    os.mkfifo(site / "fifo")
    return site, ipxe, outside


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("undionly.kpxe", b"packaged"),  # found in the second root
        ("ipxe.efi", b"site override"),  # the first root wins
        ("/Boot/BCD", b"bcd"),
        ("\\Boot\\BCD", b"bcd"),
        ("inside-link", b"bcd"),  # a symlink that stays inside is fine
    ],
)
def test_resolve_and_read(roots: tuple[Path, Path, Path], name: str, content: bytes) -> None:
    files = FileRoots([roots[0], roots[1]])
    opened = files.open(name)
    assert opened.source.read(0, 100) == content
    assert opened.source.size == len(content)
    opened.close()
    assert files.open_files == 0


@pytest.mark.parametrize(
    ("name", "code", "reason"),
    [
        ("escape", ErrorCode.ACCESS_VIOLATION, "leads out of"),
        ("escape-dir/secret", ErrorCode.ACCESS_VIOLATION, "leads out of"),
        ("Boot", ErrorCode.ACCESS_VIOLATION, "not a regular file"),
        ("/", ErrorCode.FILE_NOT_FOUND, "no file named"),
        ("fifo", ErrorCode.ACCESS_VIOLATION, "not a regular file"),
        ("dangling", ErrorCode.FILE_NOT_FOUND, "not found"),
        ("missing", ErrorCode.FILE_NOT_FOUND, "not found"),
        ("boot/bcd", ErrorCode.FILE_NOT_FOUND, "not found"),  # case matters by default
        ("../outside/secret", ErrorCode.ACCESS_VIOLATION, "'..'"),
    ],
)
def test_refused(roots: tuple[Path, Path, Path], name: str, code: ErrorCode, reason: str) -> None:
    files = FileRoots([roots[0], roots[1]])
    with pytest.raises(FileRefused, match=reason) as info:
        files.open(name)
    assert info.value.code == code


def test_device_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "null").symlink_to("/dev/null")
    files = FileRoots([Path("/dev"), tmp_path])
    with pytest.raises(FileRefused, match="not a regular file"):
        files.open("null")


def test_case_insensitive_lookup(roots: tuple[Path, Path, Path]) -> None:
    files = FileRoots([roots[0], roots[1]], case_insensitive=True)
    assert files.open("BOOT\\bcd").source.read(0, 10) == b"bcd"
    assert files.open("UNDIONLY.KPXE").source.read(0, 10) == b"packaged"
    with pytest.raises(FileRefused, match="leads out of"):
        files.open("ESCAPE")


def test_one_descriptor_shared_by_all_transfers_of_a_file(roots: tuple[Path, Path, Path]) -> None:
    files = FileRoots([roots[0], roots[1]])
    opened = [files.open("undionly.kpxe") for _ in range(100)]
    assert files.open_files == 1
    assert len({id(o.source) for o in opened}) == 1
    for o in opened[:-1]:
        o.close()
    assert opened[-1].source.read(2, 4) == b"ckag"
    opened[-1].close()
    opened[-1].close()  # closing twice is harmless
    assert files.open_files == 0


def test_netascii_is_converted(tmp_path: Path) -> None:
    (tmp_path / "boot.txt").write_bytes(b"line1\nline2\r")
    opened = FileRoots([tmp_path]).open("boot.txt", "netascii")
    assert opened.source.read(0, 100) == b"line1\r\nline2\r\0"
    assert opened.source.size == 14


def test_large_netascii_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / "big", "wb") as f:
        f.truncate(17 * 1024 * 1024)
    with pytest.raises(FileRefused, match="too large for netascii"):
        FileRoots([tmp_path]).open("big", "netascii")


def test_packaged_root_may_link_out_but_operator_roots_may_not(
    roots: tuple[Path, Path, Path],
) -> None:
    site, ipxe, outside = roots
    (ipxe / "linked.efi").symlink_to(outside / "secret")  # like Debian's ipxe.efi -> /boot
    packaged = FileRoots([site, ipxe], packaged=[ipxe])
    opened = packaged.open("linked.efi")
    assert opened.source.read(0, 100) == (outside / "secret").read_bytes()
    opened.close()
    with pytest.raises(FileRefused, match="leads out of"):
        packaged.open("escape")  # the operator's root is still confined
    with pytest.raises(FileRefused, match="leads out of"):
        FileRoots([site, ipxe]).open("linked.efi")
