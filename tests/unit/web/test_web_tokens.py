from __future__ import annotations

import pytest

from racker.web.tokens import check_token, make_token

KEY = bytes(range(32))
MAC = "52:54:00:aa:00:01"
GOOD = make_token(KEY, MAC, "ignition", 1000)


@pytest.mark.parametrize(
    ("key", "token", "mac", "purpose", "now", "ok"),
    [
        (KEY, GOOD, MAC, "ignition", 999.0, True),
        (KEY, GOOD, MAC, "ignition", 1000.0, False),  # expired at exactly `expires`
        (KEY, GOOD, MAC, "events", 0.0, False),  # other purpose
        (KEY, GOOD, "52:54:00:aa:00:02", "ignition", 0.0, False),  # other node
        (b"x" * 32, GOOD, MAC, "ignition", 0.0, False),  # other key
        (KEY, GOOD.replace("1000.", "9999."), MAC, "ignition", 0.0, False),  # extended expiry
        (KEY, GOOD[:-1] + ("A" if GOOD[-1] != "A" else "B"), MAC, "ignition", 0.0, False),
        (KEY, "", MAC, "ignition", 0.0, False),
        (KEY, "1000", MAC, "ignition", 0.0, False),
        (KEY, ".abc", MAC, "ignition", 0.0, False),
        (KEY, "-5." + GOOD.split(".")[1], MAC, "ignition", 0.0, False),
        (KEY, "1000.é☃", MAC, "ignition", 0.0, False),  # non-ASCII must not raise
        (KEY, "9" * 40 + ".x", MAC, "ignition", 0.0, False),
        (KEY, GOOD, MAC, "bogus", 0.0, False),
        (b"", GOOD, MAC, "ignition", 0.0, False),
    ],
)
def test_check_token(key: bytes, token: str, mac: str, purpose: str, now: float, ok: bool) -> None:
    assert check_token(key, token, mac, purpose, now) is ok


def test_token_is_safe_in_urls_and_kernel_command_lines() -> None:
    token = make_token(KEY, MAC, "events", 1_700_000_000)
    assert set(token) <= set("0123456789.-_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    assert check_token(KEY, token, MAC, "events", 1_699_999_999)


def test_make_token_rejects_unknown_purpose_and_empty_key() -> None:
    with pytest.raises(ValueError, match="purpose"):
        make_token(KEY, MAC, "admin", 1)
    with pytest.raises(ValueError, match="key"):
        make_token(b"", MAC, "ignition", 1)
