"""``racker selftest``'s target: what it needs of racker serve's state directory."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from racker.errors import EnvironmentProblem
from racker.rack.loading import Rack
from racker.selftest import target


def test_a_key_it_cannot_read_says_run_as_root_not_delete_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # racker serve's key is 0600, root's: run by another user, the self-test must not pass on
    # the key reader's hint (delete it: every URL racker issued would stop working).
    key = tmp_path / "http.key"
    key.write_text("ab" * 32 + "\n")
    key.chmod(0o600)
    real_access = os.access

    def access(path: Any, mode: int) -> bool:
        return False if Path(path) == key else real_access(path, mode)

    monkeypatch.setattr(os, "access", access)  # as a user other than the key's owner
    rack = cast(Rack, SimpleNamespace(state_dir=tmp_path))
    with pytest.raises(EnvironmentProblem) as raised:
        target.target_of(rack)
    assert "cannot read racker serve's key" in raised.value.message
    assert "as root" in (raised.value.hint or "")
    assert "delete" not in str(raised.value.message) + str(raised.value.hint)
    assert key.exists()
