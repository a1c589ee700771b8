"""``racker selftest``'s DHCP client, recognised by the core (layer 1: pure).

The self-test asks racker for an answer as each kind of PXE client would, and racker must not
allocate or store a lease for it. Only root on the management node may obtain that: the
request carries a proof in option 243 (site-specific, RFC 2132 §2) that only a holder of
racker's HMAC key (``<state dir>/http.key``, mode 0600, ``racker.web.keyfile``) can make::

    option 243 = version (1 byte, 1) | time (8 bytes, Unix seconds) | tag (16 bytes)
    tag        = HMAC-SHA256(key, "racker-selftest/1" | chaddr | xid | message type | time)[:16]

The xid is taken from the message's own bytes, not from the core's memo (whose remembered
message may carry another xid). A proof older or newer than ``MAX_AGE`` seconds, or seen
before (an exact replay), is no proof; so is any while ``SEEN_LIMIT`` valid ones are
remembered (the replay list is bounded and never forgets a proof that is still valid). A
request whose proof fails is served as any other client's: the self-test path is never
entered without the key.

A proven DISCOVER gets an OFFER and a proven REQUEST an ACK of ``TEST_ADDRESS`` (192.0.2.1,
TEST-NET-1, RFC 5737: documentation only, never a rack address, so the answer can neither
collide with a lease nor be mistaken for one) with a ``TEST_LEASE_TIME`` lease and the boot
file racker gives that kind of client. The lease table, the store and the discovery list are
not touched; the one event is of kind ``selftest``, never a node's.

The request reaches racker as a relayed message (its relay socket, see ``racker.selftest.dhcp``
for why), but the answer is addressed to the client's MAC on the PXE link, so it leaves through
racker's packet socket on the PXE interface, where the self-test sees it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import struct
from typing import TYPE_CHECKING

from racker.dhcp.codec import encode
from racker.dhcp.events import stamped
from racker.dhcp.options import CLIENT_PORT, MessageType
from racker.dhcp.reply import Destination, Server, build_reply
from racker.events import Event

if TYPE_CHECKING:
    from racker.dhcp.memo import Remembered
    from racker.dhcp.settings import CoreSettings

OPTION = 243  # site-specific (RFC 2132 §2: 224-254); nothing racker or PXE firmware uses
VERSION = 1
MAX_AGE = 60.0  # seconds either way between the proof's time and racker's clock
TAG_BYTES = 16
TEST_ADDRESS = ipaddress.IPv4Address("192.0.2.1")  # TEST-NET-1 (RFC 5737)
TEST_LEASE_TIME = 60
SEEN_LIMIT = 1024  # proofs remembered against replays (a self-test run sends 8)

_CONTEXT = b"racker-selftest/1"
_HEAD = struct.Struct("!BQ")
_DISCOVER = MessageType.DISCOVER.value
_REQUEST = MessageType.REQUEST.value
_OFFER = MessageType.OFFER.value
_ACK = MessageType.ACK.value
_TIMES = (
    struct.pack("!I", TEST_LEASE_TIME),
    struct.pack("!I", TEST_LEASE_TIME // 2),
    struct.pack("!I", TEST_LEASE_TIME * 7 // 8),
)

# What the core sends for a proven request: the reply (None: nothing to send), where, events.
Answered = tuple[bytes | None, Destination | None, list[Event]]


def _tag(key: bytes, chaddr: bytes, xid: int, mtype: int, when: int) -> bytes:
    data = b"".join((_CONTEXT, chaddr, struct.pack("!IBQ", xid, mtype, when)))
    return hmac.new(key, data, hashlib.sha256).digest()[:TAG_BYTES]


def make_proof(key: bytes, chaddr: bytes, xid: int, mtype: int, when: float) -> bytes:
    """Option 243's value for a self-test message (the client's side)."""
    seconds = int(when)
    return _HEAD.pack(VERSION, seconds) + _tag(key, chaddr, xid, mtype, seconds)


class SelfTestGate:
    """Checks self-test proofs and answers proven requests without a lease (see the module)."""

    def __init__(self, key: bytes, max_age: float = MAX_AGE) -> None:
        self._key = key
        self._max_age = max_age
        self._seen: dict[bytes, float] = {}  # tag -> when it may be forgotten

    def check(self, proof: bytes, chaddr: bytes, xid: int, mtype: int, now: float) -> str:
        """Why ``proof`` is no proof for this message ("" when it is one)."""
        if len(proof) != _HEAD.size + TAG_BYTES:
            return f"option {OPTION} of {len(proof)} bytes"
        version, when = _HEAD.unpack_from(proof)
        if version != VERSION:
            return f"option {OPTION} version {version}"
        if abs(now - when) > self._max_age:
            return f"option {OPTION} is {now - when:.0f} s old"
        tag = proof[_HEAD.size :]
        if not hmac.compare_digest(tag, _tag(self._key, chaddr, xid, mtype, when)):
            return f"option {OPTION} does not match racker's key"
        if tag in self._seen:
            return f"option {OPTION} replayed"
        if len(self._seen) >= SEEN_LIMIT:
            # Forget the proofs their time now refuses; never one still valid (fail closed).
            self._seen = {t: until for t, until in self._seen.items() if until >= now}
            if len(self._seen) >= SEEN_LIMIT:
                return f"over {SEEN_LIMIT} self-test messages in {2 * self._max_age:.0f} s"
        self._seen[tag] = when + self._max_age  # after that, its time refuses it
        return ""

    def answer(
        self, req: Remembered, data: bytes, settings: CoreSettings, server: Server, now: float
    ) -> Answered | None:
        """The answer to a request carrying option 243, or None: no valid proof, so the
        request is any client's. Touches nothing but the replay list."""
        proof = req.msg.options.get(OPTION)
        if proof is None or len(data) < 8:
            return None
        xid = struct.unpack_from("!I", data, 4)[0]
        if self.check(proof, req.msg.chaddr, xid, req.mtype, now):
            return None
        if req.mtype == _DISCOVER:
            mtype = _OFFER
        elif req.mtype == _REQUEST:
            mtype = _ACK
        else:
            return None, None, []  # proven, but nothing to answer (a RELEASE, a DECLINE)
        address = TEST_ADDRESS.packed
        msg = dataclasses.replace(req.msg, xid=xid)
        reply = build_reply(msg, mtype, address, _TIMES, settings.local, req.boot, server)
        boot_file = req.boot.file if req.boot is not None else None
        sent = req.exchange.sent(mtype, str(TEST_ADDRESS), boot_file)
        event = dataclasses.replace(
            stamped(sent, now, xid, "racker selftest: answered without a lease"), kind="selftest"
        )
        # To the client's MAC on the PXE link (RFC 2131 §4.1's unicast to chaddr), whatever
        # giaddr says: the self-test listens there, and racker's own relay port must not get it.
        where = Destination(str(TEST_ADDRESS), CLIENT_PORT, msg.chaddr)
        return encode(reply), where, [event]
