"""The HMAC key for per-node tokens: ``<state dir>/http.key``, created once, mode 0600.

The key is written to a private temporary file (``mkstemp`` opens it with O_EXCL, mode 0600)
and then hard-linked into place: ``link(2)`` fails if the name exists, so two racker processes
starting at once agree on one key, and no reader ever sees a half-written file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

from racker.errors import StateError

KEY_BYTES = 32


def load_or_create_key(path: Path) -> bytes:
    """Return the key stored at ``path``, creating it (random, 0600) when missing."""
    if not path.exists():
        _create(path)
    return _read(path)


def _create(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".http.key.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_bytes(KEY_BYTES).hex() + "\n")
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(tmp, path)
    except OSError as exc:
        raise StateError(
            f"cannot create the HTTP token key {path}: {exc.strerror}",
            "check that the state directory is writable by racker",
        ) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read(path: Path) -> bytes:
    try:
        st = os.stat(path)
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(
            f"cannot read the HTTP token key {path}: {exc}",
            "delete it to have racker create a new one (issued URLs stop working)",
        ) from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StateError(
            f"the HTTP token key {path} is readable by other users (mode {st.st_mode & 0o777:o})",
            f"chmod 600 {path}",
        )
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        key = b""
    if len(key) < KEY_BYTES:
        raise StateError(
            f"the HTTP token key {path} is not {KEY_BYTES} hex-encoded bytes",
            "delete it to have racker create a new one (issued URLs stop working)",
        )
    return key
