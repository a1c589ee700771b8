"""The transfer state machine, driven without sockets: tables of (datagrams in, datagrams out)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racker.tftp.packets import (
    Data,
    Error,
    OptionAck,
    decode,
    encode_ack,
    encode_error,
)
from racker.tftp.transfer import (
    READ_AHEAD,
    BytesSource,
    Negotiated,
    Status,
    Transfer,
    TransferLimits,
    max_blksize_for_mtu,
    negotiate,
    netascii_encode,
)

LIMITS = TransferLimits(max_blksize=1468, max_windowsize=64, timeout=1.0, retries=5)


class PatternSource:
    """A large file that exists only as a formula, recording every read."""

    def __init__(self, size: int) -> None:
        self._size = size
        self.reads: list[tuple[int, int]] = []

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        self.reads.append((offset, length))
        length = max(0, min(length, self._size - offset))
        start = offset % len(_BASE)
        return _TILED[start : start + length]


_BASE = bytes((i * 7) & 0xFF for i in range(1021))  # a prime length: blocks never line up
_TILED = _BASE * 100


def content(size: int) -> bytes:
    return (_BASE * (size // len(_BASE) + 1))[:size]


@pytest.mark.parametrize(
    ("options", "size", "limits", "expected"),
    [
        # OVMF PxeBc size probe and download (fixtures/firmware/README.md, capture 3)
        (
            (("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")),
            173792,
            LIMITS,
            Negotiated(
                1468, 4, 1.0, (("tsize", "173792"), ("blksize", "1468"), ("windowsize", "4"))
            ),
        ),
        (
            (("blksize", "1468"), ("windowsize", "4")),
            173792,
            LIMITS,
            Negotiated(1468, 4, 1.0, (("blksize", "1468"), ("windowsize", "4"))),
        ),
        # iPXE (capture 5)
        (
            (("blksize", "1432"), ("tsize", "0")),
            74213,
            LIMITS,
            Negotiated(1432, 1, 1.0, (("blksize", "1432"), ("tsize", "74213"))),
        ),
        ((), 10, LIMITS, Negotiated()),
        # capped at the MTU (RFC 2348 lets the server answer a smaller blksize)
        ((("blksize", "65464"),), 10, LIMITS, Negotiated(1468, oack=(("blksize", "1468"),))),
        ((("blksize", "8"),), 10, LIMITS, Negotiated(8, oack=(("blksize", "8"),))),
        # out of range or not a number: ignored, and no OACK when nothing was accepted
        ((("blksize", "7"),), 10, LIMITS, Negotiated()),
        ((("blksize", "-1"), ("windowsize", "x")), 10, LIMITS, Negotiated()),
        ((("windowsize", "0"), ("timeout", "0"), ("timeout", "256")), 10, LIMITS, Negotiated()),
        ((("multicast", ""), ("foo", "1")), 10, LIMITS, Negotiated()),
        # capped by config.tftp.max_windowsize (RFC 7440 lets the server lower it)
        (
            (("windowsize", "100"),),
            10,
            LIMITS,
            Negotiated(windowsize=64, oack=(("windowsize", "64"),)),
        ),
        (
            (("windowsize", "16"),),
            10,
            TransferLimits(max_windowsize=1),
            Negotiated(windowsize=1, oack=(("windowsize", "1"),)),
        ),
        # RFC 2349 timeout is echoed; we retransmit after the shorter of it and our own
        ((("timeout", "3"),), 10, LIMITS, Negotiated(timeout=1.0, oack=(("timeout", "3"),))),
        (
            (("timeout", "3"),),
            10,
            TransferLimits(timeout=5.0),
            Negotiated(timeout=3.0, oack=(("timeout", "3"),)),
        ),
        # names are case-insensitive and echoed as spelt; the first of a repeated option wins
        (
            (("BlkSize", "1024"), ("blksize", "600")),
            10,
            LIMITS,
            Negotiated(1024, oack=(("BlkSize", "1024"),)),
        ),
        ((("TSIZE", "0"),), 0, LIMITS, Negotiated(oack=(("TSIZE", "0"),))),
    ],
)
def test_negotiate(
    options: tuple[tuple[str, str], ...], size: int, limits: TransferLimits, expected: Negotiated
) -> None:
    assert negotiate(options, size, limits) == expected


@pytest.mark.parametrize(
    ("mtu", "blksize"), [(1500, 1468), (9000, 8968), (65536, 65464), (576, 544)]
)
def test_max_blksize_for_mtu(mtu: int, blksize: int) -> None:
    assert max_blksize_for_mtu(mtu) == blksize


@pytest.mark.parametrize(
    ("raw", "wire"),
    [(b"a\nb", b"a\r\nb"), (b"a\rb", b"a\r\0b"), (b"\r\n", b"\r\0\r\n"), (b"plain", b"plain")],
)
def test_netascii_encode(raw: bytes, wire: bytes) -> None:
    assert netascii_encode(raw) == wire


def data(block: int, payload: bytes) -> bytes:
    return b"\0\3" + block.to_bytes(2, "big") + payload


def test_lockstep_without_options_ends_with_an_empty_block() -> None:
    body = content(1024)
    t = Transfer(BytesSource(body), (), LIMITS)
    assert t.start(0.0) == [data(1, body[:512])]
    assert t.on_datagram(encode_ack(1), 0.1) == [data(2, body[512:])]
    assert t.on_datagram(encode_ack(1), 0.2) == []  # duplicate ACK: no resend
    assert t.on_datagram(encode_ack(2), 0.3) == [data(3, b"")]  # size % 512 == 0
    assert t.status is Status.RUNNING
    assert t.on_datagram(encode_ack(3), 0.4) == []
    assert (t.status, t.bytes_acked, t.resends) == (Status.FINISHED, 1024, 0)


def test_empty_file_is_one_empty_block() -> None:
    t = Transfer(BytesSource(b""), (("tsize", "0"),), LIMITS)
    assert t.start(0.0) == [b"\0\6tsize\0" + b"0\0"]
    assert t.on_datagram(encode_ack(0), 0.0) == [data(1, b"")]
    t.on_datagram(encode_ack(1), 0.0)
    assert t.status is Status.FINISHED


def test_ovmf_size_probe_is_aborted_with_error_8() -> None:
    t = Transfer(
        PatternSource(173792), (("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")), LIMITS
    )
    [oack] = t.start(0.0)
    assert decode(oack) == OptionAck(
        (("tsize", "173792"), ("blksize", "1468"), ("windowsize", "4"))
    )
    assert t.on_datagram(encode_error(8, "User aborted the transfer"), 0.1) == []
    assert t.status is Status.FAILED
    assert t.error == "client sent error 8: User aborted the transfer"


def run_client(t: Transfer, windowsize: int, first: list[bytes]) -> tuple[bytes, list[int]]:
    """A loss-free RFC 7440 client: ACK at every window end and at the short last block."""
    body, wire_blocks, queue, now = bytearray(), [], list(first), 0.0
    while queue:
        packet = decode(queue.pop(0))
        if isinstance(packet, OptionAck):
            queue += t.on_datagram(encode_ack(0), now)
            continue
        assert isinstance(packet, Data)
        wire_blocks.append(packet.block)
        body += packet.payload
        if len(wire_blocks) % windowsize == 0 or len(packet.payload) < t.blksize:
            queue += t.on_datagram(encode_ack(packet.block), now)
    return bytes(body), wire_blocks


def test_ovmf_download_with_windowsize_4() -> None:
    source = PatternSource(173792)
    t = Transfer(source, (("blksize", "1468"), ("windowsize", "4")), LIMITS)
    body, blocks = run_client(t, 4, t.start(0.0))
    assert body == content(173792)
    assert blocks == list(range(1, 120))  # 118 x 1468 + 568
    assert (t.status, t.resends, t.windowsize) == (Status.FINISHED, 0, 4)
    # read on demand, READ_AHEAD bytes at a time: never the whole file, and hardly anything twice
    assert max(length for _, length in source.reads) == READ_AHEAD < 173792
    assert len(source.reads) == 3
    assert sum(min(length, 173792 - offset) for offset, length in source.reads) < 173792 * 1.1


def test_ipxe_download_blksize_1432() -> None:
    t = Transfer(PatternSource(74213), (("blksize", "1432"), ("tsize", "0")), LIMITS)
    body, blocks = run_client(t, 1, t.start(0.0))
    assert body == content(74213)
    assert len(blocks) == 52  # 51 x 1432 + 1181
    assert t.status is Status.FINISHED


def test_block_numbers_roll_over_past_65535() -> None:
    size = 512 * 70000 + 100
    source = PatternSource(size)
    t = Transfer(source, (), LIMITS)
    queue, blocks, now = t.start(0.0), [], 0.0
    while queue:
        block = int.from_bytes(queue[0][2:4], "big")
        blocks.append(block)
        queue = t.on_datagram(encode_ack(block), now)
    assert blocks[65534:65537] == [65535, 0, 1]
    assert len(blocks) == 70001
    assert (t.status, t.bytes_acked) == (Status.FINISHED, size)


def test_timeouts_resend_with_backoff_then_give_up() -> None:
    t = Transfer(BytesSource(b"abc"), (), TransferLimits(timeout=1.0, retries=4))
    assert t.start(10.0) == [data(1, b"abc")]
    assert t.on_timeout(10.5) == []  # not due yet
    # Each retransmission in a row waits twice as long as the one before, at most 4x.
    assert t.on_timeout(11.0) == [data(1, b"abc")]  # next due at 13
    assert t.on_timeout(12.9) == []
    assert t.on_timeout(13.0) == [data(1, b"abc")]  # next due at 17
    assert t.on_timeout(16.9) == []
    assert t.on_timeout(17.0) == [data(1, b"abc")]  # next due at 21 (capped at 4x)
    assert t.on_timeout(21.0) == [data(1, b"abc")]
    assert t.deadline == 25.0
    assert decode(t.on_timeout(25.0)[0]) == Error(0, "timed out")
    assert t.status is Status.FAILED
    assert (t.resends, t.error) == (
        4,
        "no ACK for the last block (1) after 4 retransmissions: the client may have the whole file",
    )


def test_a_timeout_before_the_last_block_names_the_block() -> None:
    t = Transfer(BytesSource(bytes(1500)), (), TransferLimits(timeout=1.0, retries=1))
    t.start(0.0)
    assert t.on_datagram(encode_ack(1), 0.5) == [data(2, bytes(512))]
    assert len(t.on_timeout(1.5)) == 1
    assert decode(t.on_timeout(3.5)[0]) == Error(0, "timed out")
    assert t.error == "timed out after 1 retransmissions (block 2)"


def test_progress_resets_the_retry_count() -> None:
    t = Transfer(BytesSource(bytes(1500)), (), TransferLimits(timeout=1.0, retries=1))
    t.start(0.0)
    assert len(t.on_timeout(1.0)) == 1
    assert t.on_datagram(encode_ack(1), 1.5) == [data(2, bytes(512))]
    assert t.deadline == 2.5  # progress: the wait is back to the plain timeout
    assert len(t.on_timeout(2.5)) == 1  # a fresh try, not the second in a row
    assert t.status is Status.RUNNING


def test_oack_is_resent_on_timeout_and_stray_acks_are_ignored() -> None:
    t = Transfer(BytesSource(b"x"), (("blksize", "1024"),), LIMITS)
    [oack] = t.start(0.0)
    assert t.on_datagram(encode_ack(1), 0.1) == []  # not the ACK 0 that answers an OACK
    assert t.on_timeout(1.0) == [oack]
    assert t.on_datagram(encode_ack(0), 1.1) == [data(1, b"x")]
    assert t.resends == 1


def test_a_gap_in_a_window_resends_from_the_last_acknowledged_block() -> None:
    body = content(512 * 10)
    t = Transfer(BytesSource(body), (("windowsize", "4"),), LIMITS)
    t.start(0.0)
    assert [int.from_bytes(d[2:4], "big") for d in t.on_datagram(encode_ack(0), 0.0)] == [
        1,
        2,
        3,
        4,
    ]
    # block 3 was lost: the client ACKs 2, the sender restarts the window at 3 (RFC 7440)
    resent = t.on_datagram(encode_ack(2), 0.1)
    assert [int.from_bytes(d[2:4], "big") for d in resent] == [3, 4, 5, 6]
    assert t.resends == 2
    assert t.on_datagram(encode_ack(2), 0.2) == []  # the ACK duplicated: Sorcerer's Apprentice
    assert t.on_datagram(encode_ack(1), 0.2) == []  # an older ACK arriving late
    assert len(t.on_datagram(encode_ack(6), 0.3)) == 4


@pytest.mark.parametrize(
    "datagram",
    [
        b"\0\1again\0octet\0",  # a request on the transfer port
        data(1, b"upload"),  # DATA towards a read-only server
        b"\0\6blksize\0" + b"512\0",
    ],
)
def test_unexpected_packets_end_the_transfer_with_error_4(datagram: bytes) -> None:
    t = Transfer(BytesSource(b"x"), (), LIMITS)
    t.start(0.0)
    [reply] = t.on_datagram(datagram, 0.1)
    assert decode(reply).code == 4  # type: ignore[union-attr]
    assert t.status is Status.FAILED


@pytest.mark.parametrize("datagram", [b"", b"\0", b"\0\7xx", b"\0\1no-nul"])
def test_mangled_datagrams_are_dropped_and_the_transfer_goes_on(datagram: bytes) -> None:
    t = Transfer(BytesSource(b"x" * 600), (), LIMITS)
    t.start(0.0)
    assert t.on_datagram(datagram, 0.1) == []
    assert t.status is Status.RUNNING
    assert t.on_datagram(encode_ack(1), 0.2) == [data(2, b"x" * 88)]


def test_finished_transfer_ignores_everything() -> None:
    t = Transfer(BytesSource(b""), (), LIMITS)
    t.start(0.0)
    t.on_datagram(encode_ack(1), 0.0)
    assert t.on_datagram(encode_ack(1), 0.1) == []
    assert t.on_timeout(100.0) == []


class LossyClient:
    """An RFC 7440 receiver: ACK at window end, on the last block, and on any out-of-order block."""

    def __init__(self, windowsize: int, blksize: int) -> None:
        self.windowsize, self.blksize = windowsize, blksize
        self.expected, self.in_window, self.body = 1, 0, bytearray()

    def receive(self, datagram: bytes) -> list[bytes]:
        packet = decode(datagram)
        if isinstance(packet, OptionAck):
            return [encode_ack(0)] if self.expected == 1 else []
        assert isinstance(packet, Data)
        if packet.block != self.expected & 0xFFFF:
            self.in_window = 0
            return [encode_ack(self.expected - 1)]
        self.body += packet.payload
        self.expected += 1
        self.in_window += 1
        if self.in_window == self.windowsize or len(packet.payload) < self.blksize:
            self.in_window = 0
            return [encode_ack(packet.block)]
        return []


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.3),
    windowsize=st.sampled_from([1, 4, 16]),
    size=st.integers(0, 40 * 512),
)
def test_lossy_duplicating_network_still_delivers_the_file(
    seed: int, loss: float, windowsize: int, size: int
) -> None:
    rng = random.Random(seed)  # noqa: S311 - a reproducible network, not a secret
    body = content(size)
    options = (("windowsize", str(windowsize)),) if windowsize > 1 else ()
    t = Transfer(BytesSource(body), options, TransferLimits(retries=1000))
    client = LossyClient(windowsize, 512)
    now, to_client, to_server = 0.0, t.start(0.0), []
    while t.status is Status.RUNNING:
        if not to_client and not to_server:
            now = t.deadline
            to_client = t.on_timeout(now)
            continue
        for datagram in to_client:
            if rng.random() >= loss:
                to_server += client.receive(datagram) * rng.choice([1, 1, 2])  # sometimes twice
        to_client = []
        for datagram in to_server:
            if rng.random() >= loss:
                to_client += t.on_datagram(datagram, now)
        to_server = []
    assert t.status is Status.FINISHED
    assert bytes(client.body) == body


def test_abort_ends_a_running_transfer_only() -> None:
    t = Transfer(BytesSource(b"x"), (), LIMITS)
    t.start(0.0)
    t.abort("server shut down")
    assert (t.status, t.error) == (Status.FAILED, "server shut down")
    assert t.on_timeout(100.0) == []
    done = Transfer(BytesSource(b""), (), LIMITS)
    done.start(0.0)
    done.on_datagram(encode_ack(1), 0.0)
    done.abort("late")
    assert (done.status, done.error) == (Status.FINISHED, "")


def via_step(t: Transfer, datagram: bytes, now: float) -> list[bytes]:
    """What the session does: the lock-step fast path first, the general one when it declines."""
    fast = t.step(datagram, now)
    return [fast] if fast is not None else t.on_datagram(datagram, now)


def state(t: Transfer) -> tuple[object, ...]:
    return (t.status, t.error, t.resends, t.deadline, t.bytes_acked)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    loss=st.floats(0.0, 0.3),
    windowsize=st.sampled_from([1, 1, 4]),
    blksize=st.sampled_from([512, 1468, 8]),
    size=st.integers(0, 3 * READ_AHEAD),
)
def test_step_answers_exactly_as_on_datagram(
    seed: int, loss: float, windowsize: int, blksize: int, size: int
) -> None:
    # Two transfers of one file see the same datagrams at the same times, one through step()
    # and one through on_datagram() only: every answer and every state must be the same,
    # across read-ahead boundaries, losses, duplicates and timeouts.
    rng = random.Random(seed)  # noqa: S311 - a reproducible network, not a secret
    body = content(size)
    options = (("blksize", str(blksize)),) + (
        (("windowsize", str(windowsize)),) if windowsize > 1 else ()
    )
    limits = TransferLimits(retries=1000)
    fast, plain = (
        Transfer(BytesSource(body), options, limits),
        Transfer(BytesSource(body), options, limits),
    )
    client = LossyClient(windowsize, blksize)
    now, to_client, to_server = 0.0, fast.start(0.0), []
    assert plain.start(0.0) == to_client
    while plain.status is Status.RUNNING:
        if not to_client and not to_server:
            now = plain.deadline
            to_client = plain.on_timeout(now)
            assert fast.on_timeout(now) == to_client
            continue
        for datagram in to_client:
            if rng.random() >= loss:
                to_server += client.receive(datagram) * rng.choice([1, 1, 2])
        to_client = []
        for datagram in to_server:
            if rng.random() >= loss:
                now += 0.001
                answer = plain.on_datagram(datagram, now)
                assert via_step(fast, datagram, now) == answer
                assert state(fast) == state(plain)
                to_client += answer
        to_server = []
    assert plain.status is Status.FINISHED
    assert bytes(client.body) == body


def test_step_declines_what_is_not_the_next_lockstep_block() -> None:
    body = content(2000)
    t = Transfer(BytesSource(body), (("blksize", "512"),), LIMITS)
    t.start(0.0)
    assert t.step(encode_ack(0), 0.1) is None  # the OACK's ACK: on_datagram's job
    assert t.on_datagram(encode_ack(0), 0.1) == [data(1, body[:512])]
    before = state(t)
    for other in (encode_ack(0), encode_ack(2), encode_ack(1) + b"x", b"\0\5\0\1x\0", b""):
        assert t.step(other, 0.2) is None
        assert state(t) == before
    assert t.step(encode_ack(1), 0.3) == data(2, body[512:1024])
    assert t.step(encode_ack(1), 0.4) is None  # a duplicate now
    assert t.step(encode_ack(2), 0.5) == data(3, body[1024:1536])
    assert t.step(encode_ack(3), 0.6) is None  # block 4 is the short last one
    assert t.on_datagram(encode_ack(3), 0.6) == [data(4, body[1536:])]
    assert t.step(encode_ack(4), 0.7) is None
    assert t.on_datagram(encode_ack(4), 0.7) == []
    assert t.status is Status.FINISHED
    assert t.step(encode_ack(4), 0.8) is None
    # windows never take the fast path, and neither does an aborted transfer
    w = Transfer(BytesSource(body), (("windowsize", "2"),), LIMITS)
    w.start(0.0)
    w.on_datagram(encode_ack(0), 0.0)
    assert w.step(encode_ack(2), 0.1) is None
    a = Transfer(BytesSource(body), (), LIMITS)
    a.start(0.0)
    a.abort("server shut down")
    assert a.step(encode_ack(1), 0.1) is None


def test_step_rolls_block_numbers_over_past_65535() -> None:
    size = 512 * 70000 + 100
    t = Transfer(PatternSource(size), (), LIMITS)
    queue, blocks = t.start(0.0), []
    while queue:
        block = int.from_bytes(queue[0][2:4], "big")
        blocks.append(block)
        queue = via_step(t, encode_ack(block), 0.0)
    assert blocks[65534:65537] == [65535, 0, 1]
    assert len(blocks) == 70001
    assert (t.status, t.bytes_acked) == (Status.FINISHED, size)
