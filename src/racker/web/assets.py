"""Which file, if any, an ``/assets/...`` request may read from the asset mirror.

The router hands us the request path already percent-decoded and *not* normalised
(``%2e%2e`` arrives as ``..``, ``%2f`` as ``/``, ``%00`` as NUL), so the rules apply to the
decoded text: every segment must be a plain name (no empty segment, so no absolute path; no
leading dot, so no ``..`` and no dotfiles; no backslash, NUL or control characters). Then the
real path (symlinks resolved) must still lie inside the mirror and be a regular file, so a
symlink may point elsewhere *within* the mirror but never out of it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

_MAX_PATH = 1024


@dataclass(frozen=True)
class AssetLookup:
    path: Path | None  # the real file to send, or None (answer 404)
    reason: str = ""  # why not (for the log; never shown to the client)


def check_relative(rel: str) -> str:
    """Return "" when ``rel`` is a plain relative path of names, else what is wrong with it."""
    if not rel:
        return "empty path"
    if len(rel) > _MAX_PATH:
        return "path too long"
    for segment in rel.split("/"):
        if not segment:
            return "empty segment or absolute path"
        if segment.startswith("."):
            return "dot segment or dotfile"
        if any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in segment):
            return "backslash or control character"
    return ""


def resolve_asset(root: Path, rel: str) -> AssetLookup:
    """The file under ``root`` that ``rel`` names, if it may be served."""
    problem = check_relative(rel)
    if problem:
        return AssetLookup(None, problem)
    real_root = os.path.realpath(root)
    real = os.path.realpath(os.path.join(real_root, rel))
    if os.path.commonpath((real_root, real)) != real_root or real == real_root:
        return AssetLookup(None, "resolves outside the mirror")
    inside = os.path.relpath(real, real_root)
    if any(part.startswith(".") for part in inside.split(os.sep)):
        return AssetLookup(None, "resolves to a dotfile")
    try:
        st = os.stat(real)
    except OSError:
        return AssetLookup(None, "no such file")
    if not stat.S_ISREG(st.st_mode):
        return AssetLookup(None, "not a regular file")
    return AssetLookup(Path(real))
