"""Downloads for racker's releases: the index, bundles and tools, verified.

Everything goes through racker's one downloader (``racker.download``; http, https and file
URLs: a release mirror may be on local disk), to a ``.part`` file that is hashed before it
takes its name; a file whose SHA-256 differs from the index's is deleted and refused.
Signatures are checked with ``gpgv`` against a keyring made from ``updates.signing_key``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from racker.download import Downloader, DownloadFailed
from racker.mirror import openpgp
from racker.release.index import ReleaseError

TIMEOUT = 30.0


def _error(exc: DownloadFailed) -> ReleaseError:
    if exc.status is not None:
        return ReleaseError(str(exc), "check updates.url")
    return ReleaseError(str(exc), "check the network and updates.url")


def fetch_text(url: str, limit: int = 4 << 20) -> str:
    try:
        return Downloader(timeout=TIMEOUT).text(url, limit)
    except DownloadFailed as exc:
        if exc.status is None and exc.reason.startswith("larger than"):
            raise ReleaseError(f"{exc}; not a release index") from None
        raise _error(exc) from None


def download(url: str, dest: Path, sha256: str | None) -> Path:
    """Download ``url`` to ``dest``; with ``sha256``, refuse (and delete) a mismatching file."""
    part = dest.with_name(dest.name + ".part")
    try:
        Downloader(timeout=TIMEOUT).fetch(url, part, quiet=True)
    except DownloadFailed as exc:
        part.unlink(missing_ok=True)
        raise _error(exc) from None
    with part.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    if sha256 is not None and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise ReleaseError(
            f"{url}: SHA-256 {digest} does not match the expected {sha256} "
            "(corrupt or tampered); refused, nothing was changed",
            "run again later; if it persists the release server is bad",
        )
    os.replace(part, dest)
    return dest


def verify_signature(path: Path, signature: Path, key_file: Path) -> None:
    with openpgp.keyring(key_file) as keyring:
        detail = openpgp.signature_problem(keyring, signature, path)
    if detail is not None:
        raise ReleaseError(
            f"{path.name}: OpenPGP signature does not verify ({detail}); refused",
            "is updates.signing_key the key that signed racker's releases?",
        )
