"""`racker assets fetch` against a local release server: verify, resume, refuse tampering."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from racker.mirror.flatcar import (
    DISK_IMAGE,
    FILES,
    PXE_INITRD,
    PXE_KERNEL,
    AssetError,
    Progress,
    current_version,
    fetch_flatcar,
    list_releases,
)
from tests.integration.assets.release_server import (
    ReleaseServer,
    SigningKey,
    make_key,
    publish,
    serve,
    write_digests,
)

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg")

VERSION = "3975.2.0"
SIZES = {PXE_KERNEL: 300_000, PXE_INITRD: 500_000, DISK_IMAGE: 700_000}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[SigningKey, SigningKey]:
    tmp = tmp_path_factory.mktemp("keys")
    return make_key(tmp, "release"), make_key(tmp, "other")


@pytest.fixture
def release(tmp_path: Path, keys: tuple[SigningKey, SigningKey]) -> Iterator[ReleaseServer]:
    root = tmp_path / "server"
    publish(root, VERSION, keys[0], SIZES)
    with serve(root) as server:
        yield server


class Recorder(Progress):
    def __init__(self) -> None:
        self.starts: list[tuple[str, int | None, int]] = []
        self.bytes = 0
        self.notes: list[str] = []

    def start(self, name: str, total: int | None, done: int) -> None:
        self.starts.append((name, total, done))

    def advance(self, count: int) -> None:
        self.bytes += count

    def note(self, message: str) -> None:
        self.notes.append(message)


def fetch(assets: Path, server: ReleaseServer, key: Path, **kw: object) -> object:
    return fetch_flatcar(assets, channel="stable", base_url=server.url, key_file=key, **kw)  # type: ignore[arg-type]


def test_fetch_current_verifies_and_links(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    assets = tmp_path / "assets"
    progress = Recorder()
    result = fetch(assets, release, keys[0].public, progress=progress)
    directory = assets / "flatcar" / VERSION
    assert result.version == VERSION  # type: ignore[attr-defined]
    for name in FILES:
        assert (directory / name).read_bytes() == (release.root / VERSION / name).read_bytes()
        assert (directory / (name + ".sig")).is_file()  # flatcar-install verifies the image
    assert (directory / "version.txt").read_text() == f"FLATCAR_VERSION={VERSION}\n"
    assert current_version(assets, "stable") == VERSION
    assert os.readlink(assets / "flatcar" / "current-stable") == VERSION
    assert not (assets / "flatcar" / ".incoming").exists()
    assert progress.bytes == sum(SIZES.values())
    assert [s[0] for s in progress.starts] == list(FILES)
    assert [r.version for r in list_releases(assets)] == [VERSION]
    assert list_releases(assets)[0].channels == ("stable",)


def test_second_fetch_does_nothing(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    assets = tmp_path / "assets"
    fetch(assets, release, keys[0].public)
    release.requests.clear()
    result = fetch(assets, release, keys[0].public)
    assert result.already_current  # type: ignore[attr-defined]
    # Only the channel's version.txt was asked for; no file was downloaded again.
    assert [path for path, _ in release.requests] == ["/current/version.txt"]


def test_explicit_version_needs_no_version_txt(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    result = fetch(tmp_path / "a", release, keys[0].public, version=VERSION)
    assert result.version == VERSION  # type: ignore[attr-defined]
    assert "/current/version.txt" not in [p for p, _ in release.requests]


def test_tampered_file_is_rejected_and_removed(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    image = release.root / VERSION / PXE_INITRD
    data = bytearray(image.read_bytes())
    data[1000] ^= 0xFF
    image.write_bytes(bytes(data))  # DIGESTS and signature still describe the original
    assets = tmp_path / "assets"
    with pytest.raises(AssetError, match="SHA-512 does not match"):
        fetch(assets, release, keys[0].public)
    assert not (assets / "flatcar" / VERSION).exists()
    assert current_version(assets, "stable") is None
    leftovers = [p.name for p in (assets / "flatcar").rglob("*") if PXE_INITRD in p.name]
    assert PXE_INITRD not in leftovers
    assert PXE_INITRD + ".part" not in leftovers


def test_tampered_file_with_matching_digests_fails_the_signature(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    # An attacker who controls the mirror can rewrite DIGESTS, not the signature.
    kernel = release.root / VERSION / PXE_KERNEL
    kernel.write_bytes(b"evil" + kernel.read_bytes()[4:])
    write_digests(kernel)
    assets = tmp_path / "assets"
    with pytest.raises(AssetError, match="signature does not verify"):
        fetch(assets, release, keys[0].public)
    assert not any(p.name.startswith(PXE_KERNEL + ".part") for p in assets.rglob("*"))
    assert not (assets / "flatcar" / VERSION).exists()


def test_signature_by_another_key_is_rejected(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    with pytest.raises(AssetError, match="signature does not verify"):
        fetch(tmp_path / "assets", release, keys[1].public)


def test_dropped_connection_resumes_with_range(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    path = f"/{VERSION}/{DISK_IMAGE}"
    release.drop_after[path] = 250_000
    assets = tmp_path / "assets"
    fetch(assets, release, keys[0].public)
    ranges = [rng for p, rng in release.requests if p == path]
    assert ranges == [None, "bytes=250000-"]
    expected = (release.root / VERSION / DISK_IMAGE).read_bytes()
    assert (assets / "flatcar" / VERSION / DISK_IMAGE).read_bytes() == expected


def test_interrupted_run_resumes_from_part_file(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    # A previous run was killed mid-download: the .part file holds the first bytes.
    assets = tmp_path / "assets"
    staging = assets / "flatcar" / ".incoming" / VERSION
    staging.mkdir(parents=True)
    original = (release.root / VERSION / DISK_IMAGE).read_bytes()
    (staging / (DISK_IMAGE + ".part")).write_bytes(original[:123_456])
    progress = Recorder()
    fetch(assets, release, keys[0].public, progress=progress)
    path = f"/{VERSION}/{DISK_IMAGE}"
    assert [rng for p, rng in release.requests if p == path] == ["bytes=123456-"]
    assert (DISK_IMAGE, len(original), 123_456) in progress.starts
    assert (assets / "flatcar" / VERSION / DISK_IMAGE).read_bytes() == original


def test_server_ignoring_range_restarts_cleanly(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    release.ignore_range = True
    assets = tmp_path / "assets"
    staging = assets / "flatcar" / ".incoming" / VERSION
    staging.mkdir(parents=True)
    (staging / (PXE_KERNEL + ".part")).write_bytes(b"x" * 1000)
    fetch(assets, release, keys[0].public)
    expected = (release.root / VERSION / PXE_KERNEL).read_bytes()
    assert (assets / "flatcar" / VERSION / PXE_KERNEL).read_bytes() == expected


def test_refusals(
    tmp_path: Path, release: ReleaseServer, keys: tuple[SigningKey, SigningKey]
) -> None:
    with pytest.raises(AssetError, match="no signing key"):
        fetch(tmp_path, release, None)  # type: ignore[arg-type]
    with pytest.raises(AssetError, match="HTTP 404"):
        fetch(tmp_path, release, keys[0].public, version="1.2.3")
    with pytest.raises(AssetError, match=r"not X\.Y\.Z"):
        fetch(tmp_path, release, keys[0].public, version="../../etc")
    with pytest.raises(AssetError, match="unknown channel"):
        fetch_flatcar(tmp_path, channel="edge", key_file=keys[0].public)
    with pytest.raises(AssetError, match="download failed"):
        fetch_flatcar(tmp_path, base_url="http://127.0.0.1:9", key_file=keys[0].public)
