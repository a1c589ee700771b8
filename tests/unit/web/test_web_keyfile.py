from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from racker.errors import StateError
from racker.web.keyfile import KEY_BYTES, load_or_create_key


def test_creates_a_private_key_once_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "http.key"
    key = load_or_create_key(path)
    assert len(key) == KEY_BYTES
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["http.key"]  # no temp file left


def test_two_state_dirs_get_different_keys(tmp_path: Path) -> None:
    assert load_or_create_key(tmp_path / "a" / "k") != load_or_create_key(tmp_path / "b" / "k")


def test_refuses_a_key_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "http.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(StateError, match="readable by other users") as err:
        load_or_create_key(path)
    assert err.value.hint == f"chmod 600 {path}"


@pytest.mark.parametrize("content", ["", "zz\n", "00" * 8])
def test_refuses_a_damaged_key(tmp_path: Path, content: str) -> None:
    path = tmp_path / "http.key"
    path.write_text(content)
    os.chmod(path, 0o600)
    with pytest.raises(StateError, match="hex-encoded"):
        load_or_create_key(path)
