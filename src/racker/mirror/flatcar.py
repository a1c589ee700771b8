"""The local asset mirror: fetching and verifying Flatcar releases (layer 2).

Layout under the assets directory (served by racker's web server as ``/assets/``)::

    flatcar/<version>/flatcar_production_pxe.vmlinuz (+ .sig, .DIGESTS)
    flatcar/<version>/flatcar_production_pxe_image.cpio.gz (+ .sig, .DIGESTS)
    flatcar/<version>/flatcar_production_image.bin.bz2 (+ .sig: flatcar-install checks it)
    flatcar/<version>/version.txt
    flatcar/current-<channel> -> <version>          (symlink)
    flatcar/.incoming/<version>/NAME.part           (downloads in progress; resumable)

A release becomes visible only when every file is downloaded and verified: files are staged
in ``.incoming/<version>/`` and the directory is renamed into place in one step, so the web
server never serves half a release. Each file is checked against the SHA-512 in its
``NAME.DIGESTS`` and the OpenPGP signature in ``NAME.sig`` (made by Flatcar's image signing
key; verified with ``gpgv`` against the key file given). A file that fails is deleted.
Interrupted downloads resume with an HTTP Range request (RFC 9110 section 14.2).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from racker.errors import RackerError
from racker.mirror import openpgp

PXE_KERNEL = "flatcar_production_pxe.vmlinuz"
PXE_INITRD = "flatcar_production_pxe_image.cpio.gz"
DISK_IMAGE = "flatcar_production_image.bin.bz2"
FILES = (PXE_KERNEL, PXE_INITRD, DISK_IMAGE)
CHANNELS = ("stable", "beta", "alpha", "lts")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
CHUNK = 1 << 16
RETRIES = 3


class AssetError(RackerError):
    """A download failed or a file did not verify (nothing unverified is left behind)."""


def default_base_url(channel: str) -> str:
    """Flatcar's release server for a channel; ``<base>/<version>/`` holds the files."""
    return f"https://{channel}.release.flatcar-linux.net/amd64-usr"


def flatcar_dir(assets_dir: Path) -> Path:
    return assets_dir / "flatcar"


def current_version(assets_dir: Path, channel: str) -> str | None:
    """The version the mirror's ``current-<channel>`` link points to, if any."""
    link = flatcar_dir(assets_dir) / f"current-{channel}"
    try:
        target = os.readlink(link)
    except OSError:
        return None
    version = Path(target).name
    return version if (flatcar_dir(assets_dir) / version).is_dir() else None


@dataclass(frozen=True)
class MirroredRelease:
    version: str
    channels: tuple[str, ...]  # channels whose current link points here
    files: tuple[tuple[str, int], ...]  # (name, size)


def list_releases(assets_dir: Path) -> list[MirroredRelease]:
    root = flatcar_dir(assets_dir)
    if not root.is_dir():
        return []
    currents = {c: current_version(assets_dir, c) for c in CHANNELS}
    out = []
    for entry in sorted(root.iterdir(), key=lambda p: _version_key(p.name)):
        if entry.is_symlink() or not entry.is_dir() or not VERSION_RE.match(entry.name):
            continue
        files = tuple((n, (entry / n).stat().st_size) for n in FILES if (entry / n).is_file())
        channels = tuple(c for c, v in currents.items() if v == entry.name)
        out.append(MirroredRelease(entry.name, channels, files))
    return out


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(x) for x in name.split(".")) if VERSION_RE.match(name) else (-1,)


class Progress:
    """Progress reporting for downloads; the default reports nothing (the CLI's shows bars)."""

    def start(self, name: str, total: int | None, done: int) -> None:
        """A download of ``name`` begins (``done`` bytes already there from a resume)."""

    def advance(self, count: int) -> None:
        """``count`` more bytes arrived."""

    def note(self, message: str) -> None:
        """A one-line status message (verified, skipped, resumed)."""


@dataclass(frozen=True)
class FetchResult:
    version: str
    directory: Path
    downloaded: tuple[str, ...]  # files fetched this time (empty: already current)

    @property
    def already_current(self) -> bool:
        return not self.downloaded


Opener = Callable[[urllib.request.Request, float], http.client.HTTPResponse]


def _open(request: urllib.request.Request, timeout: float) -> http.client.HTTPResponse:
    return urllib.request.urlopen(request, timeout=timeout)  # type: ignore[no-any-return]  # noqa: S310 - URL scheme checked in fetch_flatcar


def fetch_flatcar(
    assets_dir: Path,
    *,
    channel: str = "stable",
    version: str = "current",
    base_url: str | None = None,
    key_file: Path | None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    opener: Opener = _open,
) -> FetchResult:
    """Mirror one Flatcar release (PXE kernel + initrd, disk image) into ``assets_dir``.

    ``key_file`` is the OpenPGP public key that signed the release; None is refused (there
    is no built-in key), so an unverified image never reaches a node.
    """
    progress = progress or Progress()
    if channel not in CHANNELS:
        raise AssetError(f"unknown channel {channel!r}", f"use one of {', '.join(CHANNELS)}")
    if key_file is None:
        raise AssetError(
            "no signing key to verify the release with",
            "pass --key FILE (Flatcar's image signing key, from "
            "https://www.flatcar.org/security/image-signing-key/) or set install.signing_key",
        )
    if not key_file.is_file():
        raise AssetError(f"{key_file}: signing key file not found")
    base = (base_url or default_base_url(channel)).rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise AssetError(f"base URL {base!r} is not http(s)")
    fetcher = _Fetcher(opener, timeout, progress)
    if version == "current":
        version = fetcher.resolve_current(base)
    if not VERSION_RE.match(version):
        raise AssetError(f"version {version!r} is not X.Y.Z or current")
    root = flatcar_dir(assets_dir)
    final = root / version
    if _complete(final):
        _link_current(root, channel, version)
        progress.note(f"Flatcar {version} is already in the mirror ({final})")
        return FetchResult(version, final, ())
    staging = root / ".incoming" / version
    staging.mkdir(parents=True, exist_ok=True)
    downloaded = []
    with openpgp.keyring(key_file) as keyring:
        for name in FILES:
            if (staging / name).is_file():
                progress.note(f"{name}: already verified")
                continue
            url = f"{base}/{version}/{name}"
            for extra in (".DIGESTS", ".sig"):
                fetcher.download(url + extra, staging / (name + extra), quiet=True)
            part = staging / (name + ".part")
            fetcher.download(url, part, resume=True)
            try:
                _verify(part, name, staging, keyring)
            except AssetError:
                part.unlink(missing_ok=True)  # never keep (or resume from) a bad file
                raise
            part.rename(staging / name)
            progress.note(f"{name}: SHA-512 and signature verified")
            downloaded.append(name)
    (staging / "version.txt").write_text(f"FLATCAR_VERSION={version}\n", encoding="utf-8")
    if final.exists():  # a stale incomplete directory from an older racker: replace it
        shutil.rmtree(final)
    staging.rename(final)
    with contextlib.suppress(OSError):
        (root / ".incoming").rmdir()
    _link_current(root, channel, version)
    return FetchResult(version, final, tuple(downloaded))


def _complete(directory: Path) -> bool:
    return directory.is_dir() and all((directory / n).is_file() for n in FILES)


def _link_current(root: Path, channel: str, version: str) -> None:
    link = root / f"current-{channel}"
    tmp = root / f".current-{channel}.tmp"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version)
    tmp.replace(link)  # rename(2) over the old link: readers never see it missing


class _Fetcher:
    def __init__(self, opener: Opener, timeout: float, progress: Progress) -> None:
        self.opener = opener
        self.timeout = timeout
        self.progress = progress

    def get_text(self, url: str) -> str:
        try:
            with self.opener(urllib.request.Request(url), self.timeout) as response:  # noqa: S310 - http(s) only, checked in fetch_flatcar
                return str(response.read(1 << 20).decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _download_error(url, exc) from None

    def resolve_current(self, base: str) -> str:
        text = self.get_text(f"{base}/current/version.txt")
        match = re.search(r"^FLATCAR_VERSION=(\S+)$", text, re.MULTILINE)
        if not match:
            raise AssetError(f"{base}/current/version.txt has no FLATCAR_VERSION line")
        return match.group(1)

    def download(self, url: str, dest: Path, *, resume: bool = False, quiet: bool = False) -> None:
        """Download ``url`` to ``dest``, appending from its current size when ``resume``."""
        last: BaseException | None = None
        for _attempt in range(RETRIES):
            try:
                self._download_once(url, dest, resume=resume, quiet=quiet)
                return
            except (urllib.error.HTTPError, AssetError):
                raise
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                last = exc  # connection dropped: keep what arrived, resume from there
                if not resume:
                    dest.unlink(missing_ok=True)
        assert last is not None
        raise _download_error(url, last)

    def _download_once(self, url: str, dest: Path, *, resume: bool, quiet: bool) -> None:
        have = dest.stat().st_size if resume and dest.exists() else 0
        request = urllib.request.Request(url)  # noqa: S310 - http(s) only, checked in fetch_flatcar
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = self.opener(request, self.timeout)
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and have:  # RFC 9110 15.5.17: we already have it all
                exc.close()
                return
            exc.close()
            raise _download_error(url, exc) from None
        with response:
            if have and response.status != 206:
                have = 0  # the server ignored the Range header: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length and length.isdigit() else None
            if not quiet:
                self.progress.start(dest.name.removesuffix(".part"), total, have)
                if have:
                    self.progress.note(f"resuming {dest.name} at byte {have}")
            with dest.open("ab" if have else "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    if not quiet:
                        self.progress.advance(len(chunk))
        if total is not None and dest.stat().st_size != total:
            raise http.client.IncompleteRead(b"", total - dest.stat().st_size)


def _download_error(url: str, exc: BaseException) -> AssetError:
    if isinstance(exc, urllib.error.HTTPError):
        return AssetError(f"{url}: HTTP {exc.code} {exc.reason}", "check --version/--base-url")
    reason = getattr(exc, "reason", None) or exc
    return AssetError(
        f"{url}: download failed: {reason}",
        "check the network and --base-url; run again to resume",
    )


def _verify(part: Path, name: str, staging: Path, keyring: Path) -> None:
    digests = (staging / (name + ".DIGESTS")).read_text(encoding="utf-8", errors="replace")
    want = _sha512_from_digests(digests, name)
    if want is None:
        raise AssetError(f"{name}.DIGESTS lists no SHA512 for {name}")
    sha = hashlib.sha512()
    with part.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    if sha.hexdigest() != want:
        raise AssetError(
            f"{name}: SHA-512 does not match {name}.DIGESTS (corrupt or tampered); removed",
            "run again to download it afresh; if it persists the mirror is bad",
        )
    detail = openpgp.signature_problem(keyring, staging / (name + ".sig"), part)
    if detail is not None:
        raise AssetError(
            f"{name}: OpenPGP signature does not verify ({detail}); removed",
            "is --key the key that signed this release?",
        )


def _sha512_from_digests(text: str, name: str) -> str | None:
    """The SHA512 line of a Flatcar DIGESTS file (``# SHA512 HASH`` then ``HEX  NAME``)."""
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            section = line.lstrip("# ").upper()
            continue
        parts = line.split()
        if section and section.startswith("SHA512") and len(parts) == 2 and parts[1] == name:
            return parts[0].lower()
    return None
