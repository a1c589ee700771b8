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
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from racker.download import Downloader, DownloadFailed, Opener, Progress, urlopen
from racker.errors import RackerError
from racker.mirror import openpgp

PXE_KERNEL = "flatcar_production_pxe.vmlinuz"
PXE_INITRD = "flatcar_production_pxe_image.cpio.gz"
DISK_IMAGE = "flatcar_production_image.bin.bz2"
FILES = (PXE_KERNEL, PXE_INITRD, DISK_IMAGE)
CHANNELS = ("stable", "beta", "alpha", "lts")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+$")
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


@dataclass(frozen=True)
class FetchResult:
    version: str
    directory: Path
    downloaded: tuple[str, ...]  # files fetched this time (empty: already current)

    @property
    def already_current(self) -> bool:
        return not self.downloaded


def fetch_flatcar(
    assets_dir: Path,
    *,
    channel: str = "stable",
    version: str = "current",
    base_url: str | None = None,
    key_file: Path | None,
    progress: Progress | None = None,
    timeout: float = 30.0,
    opener: Opener = urlopen,
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
    fetcher = Downloader(opener, timeout, progress, RETRIES)
    if version == "current":
        version = _resolve_current(fetcher, base)
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
                _fetch(fetcher, url + extra, staging / (name + extra), resume=False, quiet=True)
            part = staging / (name + ".part")
            _fetch(fetcher, url, part, resume=True, quiet=False)
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


def _resolve_current(fetcher: Downloader, base: str) -> str:
    url = f"{base}/current/version.txt"
    try:
        text = fetcher.text(url)
    except DownloadFailed as exc:
        raise _download_error(exc) from None
    match = re.search(r"^FLATCAR_VERSION=(\S+)$", text, re.MULTILINE)
    if not match:
        raise AssetError(f"{base}/current/version.txt has no FLATCAR_VERSION line")
    return match.group(1)


def _fetch(fetcher: Downloader, url: str, dest: Path, *, resume: bool, quiet: bool) -> None:
    try:
        fetcher.fetch(url, dest, resume=resume, quiet=quiet)
    except DownloadFailed as exc:
        raise _download_error(exc) from None


def _download_error(exc: DownloadFailed) -> AssetError:
    if exc.status is not None:
        return AssetError(str(exc), "check --version/--base-url")
    return AssetError(str(exc), "check the network and --base-url; run again to resume")


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
