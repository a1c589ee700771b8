"""Downloads for racker's releases (layer 2): the index, bundles and tools, verified.

Everything goes through ``urllib`` (http, https, file URLs), streamed to a ``.part`` file and
hashed on the way; a file whose SHA-256 differs from the index's is deleted and refused.
Signatures are checked with ``gpgv`` against a keyring made from ``updates.signing_key``.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from racker import __version__
from racker.mirror import openpgp
from racker.release.index import ReleaseError

TIMEOUT = 30.0


def _open(url: str) -> BinaryIO:
    # file: URLs are allowed on purpose (a release mirror on local disk or a USB stick).
    request = urllib.request.Request(url, headers={"User-Agent": f"racker/{__version__}"})  # noqa: S310
    try:
        response: BinaryIO = urllib.request.urlopen(request, timeout=TIMEOUT)  # noqa: S310
        return response
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _error(url, exc) from None


def _error(url: str, exc: BaseException) -> ReleaseError:
    if isinstance(exc, urllib.error.HTTPError):
        return ReleaseError(f"{url}: HTTP {exc.code} {exc.reason}", "check updates.url")
    reason = getattr(exc, "reason", None) or exc
    return ReleaseError(f"{url}: download failed: {reason}", "check the network and updates.url")


def fetch_text(url: str, limit: int = 4 << 20) -> str:
    response = _open(url)
    try:
        with response:
            data: bytes = response.read(limit + 1)
    except OSError as exc:
        raise _error(url, exc) from None
    if len(data) > limit:
        raise ReleaseError(f"{url}: larger than {limit} bytes; not a release index")
    return data.decode("utf-8", errors="replace")


def download(url: str, dest: Path, sha256: str | None) -> Path:
    """Download ``url`` to ``dest``; with ``sha256``, refuse (and delete) a mismatching file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    response = _open(url)
    try:
        with response, part.open("wb") as out:
            while block := response.read(1 << 20):
                digest.update(block)
                out.write(block)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise _error(url, exc) from None
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        part.unlink(missing_ok=True)
        raise ReleaseError(
            f"{url}: SHA-256 {digest.hexdigest()} does not match the expected {sha256} "
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
