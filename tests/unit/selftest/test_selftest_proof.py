"""The self-test's proof (racker.dhcp.selftest): only racker's key, this message, recent, once."""

from __future__ import annotations

import pytest

from racker.dhcp.selftest import MAX_AGE, OPTION, SEEN_LIMIT, SelfTestGate, make_proof

KEY = bytes(range(32))
MAC = bytes.fromhex("02aabbccddee")
XID = 0x12345678
NOW = 1_800_000_000.0
DISCOVER, REQUEST = 1, 3


def test_a_proof_made_with_the_key_is_accepted() -> None:
    gate = SelfTestGate(KEY)
    assert gate.check(make_proof(KEY, MAC, XID, DISCOVER, NOW), MAC, XID, DISCOVER, NOW) == ""


@pytest.mark.parametrize(
    ("proof", "mac", "xid", "mtype", "now", "why"),
    [
        (make_proof(b"k" * 32, MAC, XID, DISCOVER, NOW), MAC, XID, DISCOVER, NOW, "key"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW), b"\x02" * 6, XID, DISCOVER, NOW, "key"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW), MAC, XID + 1, DISCOVER, NOW, "key"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW), MAC, XID, REQUEST, NOW, "key"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW - MAX_AGE - 1), MAC, XID, DISCOVER, NOW, "old"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW + MAX_AGE + 1), MAC, XID, DISCOVER, NOW, "old"),
        (make_proof(KEY, MAC, XID, DISCOVER, NOW)[:-1], MAC, XID, DISCOVER, NOW, "bytes"),
        (b"", MAC, XID, DISCOVER, NOW, "bytes"),
        (
            b"\x02" + make_proof(KEY, MAC, XID, DISCOVER, NOW)[1:],
            MAC,
            XID,
            DISCOVER,
            NOW,
            "version",
        ),
    ],
    ids=[
        "wrong-key",
        "other-mac",
        "other-xid",
        "other-message-type",
        "too-old",
        "from-the-future",
        "truncated",
        "empty",
        "unknown-version",
    ],
)
def test_anything_else_is_no_proof(
    proof: bytes, mac: bytes, xid: int, mtype: int, now: float, why: str
) -> None:
    reason = SelfTestGate(KEY).check(proof, mac, xid, mtype, now)
    assert why in reason
    assert str(OPTION) in reason


def test_a_proof_is_accepted_once() -> None:
    gate = SelfTestGate(KEY)
    proof = make_proof(KEY, MAC, XID, DISCOVER, NOW)
    assert gate.check(proof, MAC, XID, DISCOVER, NOW) == ""
    assert "replayed" in gate.check(proof, MAC, XID, DISCOVER, NOW + 1)
    # A new proof (another second) for the same message is a retransmission: accepted.
    assert gate.check(make_proof(KEY, MAC, XID, DISCOVER, NOW + 1), MAC, XID, DISCOVER, NOW) == ""


def test_the_replay_list_is_bounded_and_never_forgets_a_valid_proof() -> None:
    gate = SelfTestGate(KEY)
    first = make_proof(KEY, MAC, 0, DISCOVER, NOW)
    assert gate.check(first, MAC, 0, DISCOVER, NOW) == ""
    for xid in range(1, SEEN_LIMIT):
        assert gate.check(make_proof(KEY, MAC, xid, DISCOVER, NOW), MAC, xid, DISCOVER, NOW) == ""
    # Full of valid proofs: a new one is refused (fail closed), the first is still a replay.
    new = make_proof(KEY, MAC, SEEN_LIMIT, DISCOVER, NOW)
    assert "over" in gate.check(new, MAC, SEEN_LIMIT, DISCOVER, NOW)
    assert "replayed" in gate.check(first, MAC, 0, DISCOVER, NOW)
    assert len(gate._seen) == SEEN_LIMIT
    # Once their time refuses them all, they are forgotten and new proofs are accepted.
    later = NOW + MAX_AGE + 1
    fresh = make_proof(KEY, MAC, 1, DISCOVER, later)
    assert gate.check(fresh, MAC, 1, DISCOVER, later) == ""
    assert len(gate._seen) == 1
    assert "old" in gate.check(first, MAC, 0, DISCOVER, later)
