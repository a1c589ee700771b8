"""Per-node URL tokens (layer 1: pure; the key and the clock are parameters).

Ignition can carry secrets and anyone on the rack's L2 segment can speak HTTP, so every URL
racker hands a node for its Ignition or its phone-home carries a token: an HMAC-SHA256 over the
node's MAC, the purpose ("ignition", "events") and an expiry time. A token for one node or one
purpose is useless for another, and it stops working when it expires.

Format: ``<expires>.<mac>`` where ``mac`` is the HMAC truncated to 128 bits (RFC 2104 section 5
allows truncation to no less than half the hash length) in unpadded base64url, so the token is
safe in a URL query and on a kernel command line without escaping (no ``$``, ``&``, space).
"""

from __future__ import annotations

import base64
import hmac

PURPOSES = frozenset({"ignition", "events"})
_DIGEST_BYTES = 16
_VERSION = b"racker-token-v1"


def _mac_of(key: bytes, mac: str, purpose: str, expires: int) -> str:
    message = b"\0".join((_VERSION, mac.encode(), purpose.encode(), str(expires).encode()))
    # hmac.digest: OpenSSL's one-shot HMAC, a few times cheaper than an hmac.new() object.
    digest = hmac.digest(key, message, "sha256")[:_DIGEST_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def make_token(key: bytes, mac: str, purpose: str, expires: int) -> str:
    """A token that lets ``mac`` use ``purpose`` until ``expires`` (Unix time, seconds)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    if not key:
        raise ValueError("empty token key")
    return f"{int(expires)}.{_mac_of(key, mac, purpose, int(expires))}"


def check_token(key: bytes, token: str, mac: str, purpose: str, now: float) -> bool:
    """True when ``token`` was made with ``key`` for ``mac`` and ``purpose`` and is unexpired."""
    if not key or purpose not in PURPOSES:
        return False
    expires_text, dot, given = token.partition(".")
    if not dot or not expires_text.isascii() or not expires_text.isdigit():
        return False
    if len(expires_text) > 12:  # far beyond any sane expiry; also bounds the int() below
        return False
    expires = int(expires_text)
    # Compare before checking the time so a wrong token costs the same whether or not it expired.
    # Bytes, not str: compare_digest rejects non-ASCII str, and the token comes from the network.
    expected = _mac_of(key, mac, purpose, expires).encode("ascii")
    valid = hmac.compare_digest(expected, given.encode("utf-8", "replace"))
    return valid and now < expires
