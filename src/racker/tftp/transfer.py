"""One TFTP read transfer as a pure state machine (layer 1: no sockets, no clock).

Theory of operation
-------------------
The server hands a ``Transfer`` the client's request options, a ``BlockSource`` (the file) and
its limits. ``start(now)`` returns the first datagrams (an OACK when an option was accepted,
else DATA 1); after that the server feeds every datagram from the client's TID to
``on_datagram(data, now)`` and calls ``on_timeout(now)`` once ``deadline`` has passed. Both
return the datagrams to send; ``status`` says when the transfer is over.

Blocks are counted in absolute numbers from 1 (block 0 is the OACK) and put on the wire modulo
65536, so a 50 MiB file at 512 bytes rolls over from 65535 to 0 and carries on (the convention
of tftp-hpa, dnsmasq, curl and busybox). The last block is ``size // blksize + 1``: it is short,
or empty when the size is a multiple of blksize (RFC 1350 section 6).

Windows (RFC 7440): the sender sends up to ``windowsize`` blocks past the last acknowledged one.
An ACK that moves the acknowledged block forward sends the next window from the block after it,
which also retransmits the rest of a window the client saw a gap in (RFC 7440 section 4). An
ACK that does not move it forward (a duplicate, or an old one overtaken by a retransmission)
sends nothing: answering duplicates is the Sorcerer's Apprentice bug (RFC 1123 4.2.3.1) that
doubles the traffic for the rest of the transfer. Only a timeout retransmits without an ACK,
at most ``retries`` times in a row.

Blocks are read from the source on demand, one window at a time, so many transfers of one
large file share the page cache instead of holding copies of the file.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Protocol

from racker.errors import PacketError
from racker.tftp.packets import Error, ErrorCode, Options, decode, encode_error, encode_oack

MIN_BLKSIZE = 8  # RFC 2348
MAX_BLKSIZE = 65464  # RFC 2348: 65535 - 20 (IP) - 8 (UDP) - 4 (TFTP) - 39 (historical)
DEFAULT_BLKSIZE = 512  # RFC 1350
HEADERS = 20 + 8 + 4  # IPv4 + UDP + TFTP header: a block of MTU - 32 fills one unfragmented frame
MODES = ("octet", "netascii")
_data_header = struct.Struct(">HH").pack  # opcode 3, block number
_MAX_BACKOFF = 4  # retransmission waits: timeout x 1, 2, 4, 4, ...
# Bytes read per call when blocks are needed. Small enough that 100 transfers hold 6 MiB, large
# enough that a lock-step transfer at 512 makes one read per 128 blocks, not one per block.
READ_AHEAD = 64 * 1024  # "mail" (RFC 1350) is obsolete and refused


class BlockSource(Protocol):
    """A readable file; ``read`` may return less than ``length`` only at the end."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes: ...


class BytesSource:
    """A file held in memory (netascii conversions and tests)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    @property
    def size(self) -> int:
        return len(self._data)

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : offset + length]


def netascii_encode(data: bytes) -> bytes:
    """RFC 1350 / RFC 764: CR becomes CR NUL and LF becomes CR LF (CR first, so LF's CR stays)."""
    return data.replace(b"\r", b"\r\0").replace(b"\n", b"\r\n")


def max_blksize_for_mtu(mtu: int) -> int:
    """The largest block that fits one IPv4 packet of ``mtu`` bytes (RFC 2348 section 'blksize')."""
    return max(MIN_BLKSIZE, min(MAX_BLKSIZE, mtu - HEADERS))


@dataclass(frozen=True)
class TransferLimits:
    max_blksize: int = 1468  # from the PXE interface's MTU: max_blksize_for_mtu(mtu)
    max_windowsize: int = 64  # config.tftp.max_windowsize
    timeout: float = 1.0  # config.tftp.timeout, seconds before a retransmission
    retries: int = 5  # config.tftp.retries, retransmissions in a row before giving up


@dataclass(frozen=True)
class Negotiated:
    blksize: int = DEFAULT_BLKSIZE
    windowsize: int = 1
    timeout: float = 1.0
    oack: Options = ()  # the accepted options, in request order; empty means send no OACK


def _number(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else None


def negotiate(options: Options, size: int, limits: TransferLimits) -> Negotiated:
    """Decide the options of a read request (RFC 2347): accept what we can, ignore the rest.

    Names are matched without case and answered as the client spelt them; the first of a
    repeated option wins. An option outside its valid range is ignored rather than refused with
    error 8, so a client with odd options still gets the file with the defaults.
    """
    blksize, windowsize, timeout = DEFAULT_BLKSIZE, 1, limits.timeout
    accepted: list[tuple[str, str]] = []
    seen: set[str] = set()
    for name, value in options:
        key = name.lower()
        number = _number(value)
        if key in seen or number is None:
            continue
        seen.add(key)
        if key == "blksize" and number >= MIN_BLKSIZE:  # RFC 2348: 8..65464, we may lower it
            blksize = min(number, limits.max_blksize)
            accepted.append((name, str(blksize)))
        elif key == "tsize":  # RFC 2349: a read request sends 0, the OACK carries the size
            accepted.append((name, str(size)))
        elif key == "timeout" and 1 <= number <= 255:
            # RFC 2349: echoed unchanged. It is how long the *client* waits; we retransmit after
            # the shorter of it and config.tftp.timeout (a duplicate block is harmless, RFC 1350),
            # because curl asks for 6 s and a lost block on a LAN would otherwise stall that long.
            timeout = min(float(number), limits.timeout)
            accepted.append((name, value))
        elif key == "windowsize" and 1 <= number <= 65535:  # RFC 7440: we may lower it
            windowsize = max(1, min(number, limits.max_windowsize))
            accepted.append((name, str(windowsize)))
    return Negotiated(blksize, windowsize, timeout, tuple(accepted))


class Status(enum.Enum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"


class Transfer:
    """The server side of one read request (see the module docstring)."""

    def __init__(
        self,
        source: BlockSource,
        options: Options,
        limits: TransferLimits,
        negotiated: Negotiated | None = None,
    ) -> None:
        """``negotiated``: what ``negotiate(options, source.size, limits)`` gives, when the
        caller already has it (``admission.admit`` negotiates to accept a request)."""
        self.source = source
        if negotiated is None:
            negotiated = negotiate(options, source.size, limits)
        self.negotiated = negotiated
        self.blksize = self.negotiated.blksize
        self.windowsize = self.negotiated.windowsize
        self.timeout = self.negotiated.timeout
        self.retries = limits.retries
        self.last_block = source.size // self.blksize + 1
        self.status = Status.RUNNING
        self.error = ""  # why it failed
        self.size_probe = False  # it "failed" as a tsize probe ends: nothing went wrong
        self.resends = 0  # datagrams sent more than once
        self.deadline = 0.0  # when on_timeout must be called
        self._oack = encode_oack(self.negotiated.oack) if self.negotiated.oack else b""
        self._awaiting_oack_ack = bool(self._oack)
        self._acked = 0  # highest block the client acknowledged
        self._sent = 0  # highest block sent so far
        self._tries = 0  # retransmissions in a row without progress
        self._buffer = b""  # file bytes from _buffer_at on (read ahead, at most READ_AHEAD)
        self._buffer_at = 0
        # Lock-step only: the exact ACK of the block in flight, so that ``step`` recognises the
        # common case with one comparison; None whenever ``step`` must not answer.
        self._expect: bytes | None = None

    @property
    def bytes_acked(self) -> int:
        return min(self._acked * self.blksize, self.source.size)

    def start(self, now: float) -> list[bytes]:
        self.deadline = now + self.timeout
        if self._oack:
            return [self._oack]
        return self._send_window(now)

    def on_datagram(self, data: bytes, now: float) -> list[bytes]:
        if self.status is not Status.RUNNING:
            return []
        if len(data) >= 4 and data[0] == 0 and data[1] == 4:  # ACK: the hot path, no objects
            return self._on_ack((data[2] << 8) | data[3], now)
        try:
            packet = decode(data)
        except PacketError:
            return []  # a mangled datagram from the right TID: drop it, the timer covers it
        if isinstance(packet, Error):
            # ERROR 8 in answer to an OACK that carried tsize is how OVMF asks a file's size
            # before it downloads it (RFC 2347 lets a client decline our options this way).
            self.size_probe = (
                packet.code == ErrorCode.OPTION_NEGOTIATION
                and self._awaiting_oack_ack
                and any(name == "tsize" for name, _ in self.negotiated.oack)
            )
            reason = f"client sent error {packet.code}"
            self._fail(f"{reason}: {packet.message}" if packet.message else reason)
            return []
        self._fail(f"client sent an unexpected {type(packet).__name__} during a read")
        return [encode_error(ErrorCode.ILLEGAL_OPERATION, "unexpected packet during a read")]

    def step(self, data: bytes, now: float) -> bytes | None:
        """The common case of a lock-step transfer, at the least cost per block.

        When ``data`` is the ACK of the block in flight and the next block is read ahead and
        full, this makes exactly the state changes ``on_datagram`` would and returns that
        block's DATA. Anything else (an OACK's ACK, a duplicate, the last block, a window, an
        error, a finished transfer) returns None and changes nothing: pass ``data`` to
        ``on_datagram``. A lock-step transfer spends most of its life here, so this is a few
        attribute reads and no lists: the general path's list and dispatch are a measurable
        share of a block's CPU (docs/benchmarks.md, "TFTP").
        """
        if data != self._expect:
            return None
        size = self.blksize
        sent = self._sent
        at = sent * size - self._buffer_at  # block sent + 1 starts at sent * size in the file
        if at + size > len(self._buffer):
            return None  # past the read-ahead, or the short last block: the general path
        self._acked = sent
        sent += 1
        self._sent = sent
        self._tries = 0
        self.deadline = now + self.timeout
        wire = (sent & 0xFFFF).to_bytes(2, "big")
        self._expect = b"\0\4" + wire
        return b"\0\3" + wire + self._buffer[at : at + size]

    def on_timeout(self, now: float) -> list[bytes]:
        if self.status is not Status.RUNNING or now < self.deadline:
            return []
        self._tries += 1
        if self._tries > self.retries:
            waiting = 0 if self._awaiting_oack_ack else self._acked + 1
            if waiting == self.last_block:
                # RFC 1350 section 6: only a client that dallies re-ACKs a resent last block;
                # one that does not may well have the whole file. Say so, not just "timed out".
                self._fail(
                    f"no ACK for the last block ({waiting}) after {self.retries} "
                    "retransmissions: the client may have the whole file"
                )
            else:
                self._fail(f"timed out after {self.retries} retransmissions (block {waiting})")
            return [encode_error(ErrorCode.NOT_DEFINED, "timed out")]
        if self._awaiting_oack_ack:
            self.resends += 1
            self.deadline = now + self._wait()
            return [self._oack]
        return self._send_window(now)

    def _on_ack(self, block: int, now: float) -> list[bytes]:
        if self._awaiting_oack_ack:
            if block != 0:
                return []
            self._awaiting_oack_ack = False
            self._tries = 0
            return self._send_window(now)
        delta = (block - self._acked) & 0xFFFF
        if delta == 0 or delta > self._sent - self._acked:
            return []  # duplicate or stale ACK: never answered (Sorcerer's Apprentice)
        self._acked += delta
        self._tries = 0
        if self._acked == self.last_block:
            self.status = Status.FINISHED
            self._expect = None
            return []
        return self._send_window(now)

    def _send_window(self, now: float) -> list[bytes]:
        first = self._acked + 1
        end = min(self._acked + self.windowsize, self.last_block)
        size = self.blksize
        start, length = (first - 1) * size, (end - first + 1) * size
        base = self._buffer_at
        if start < base or (
            start + length > base + len(self._buffer)
            and base + len(self._buffer) < self.source.size
        ):
            # Read ahead in one call: a syscall per READ_AHEAD bytes, not per block; a window
            # that runs past the buffer (or a resend before it) reads afresh from ``start``.
            self._buffer = self.source.read(start, max(length, READ_AHEAD))
            self._buffer_at = base = start
        at = start - base
        out = []
        view = memoryview(self._buffer)  # header + a view of the block: one copy per DATA
        for n in range(first, end + 1):
            out.append(_data_header(3, n & 0xFFFF) + view[at : at + size])
            at += size
        if self._sent >= first:
            self.resends += min(self._sent, end) - first + 1
        self._sent = max(self._sent, end)
        self.deadline = now + self._wait()
        if self.windowsize == 1 and self._sent == end:
            self._expect = b"\0\4" + (end & 0xFFFF).to_bytes(2, "big")
        return out

    def _wait(self) -> float:
        """How long to wait for an answer: the timeout, doubled with each retransmission in a
        row (at most 4x). A client that restarts its own wait on every datagram and ignores a
        repeated DATA (what busybox tftp appeared to do under 5 % loss) would otherwise never
        time out and re-ACK while we resend faster than it waits: both stuck until we give up.
        """
        return self.timeout * min(1 << self._tries, _MAX_BACKOFF)

    def abort(self, reason: str) -> None:
        """End a running transfer from our side (shutdown); nothing more is sent."""
        if self.status is Status.RUNNING:
            self._fail(reason)

    def _fail(self, reason: str) -> None:
        self.status = Status.FAILED
        self.error = reason
        self._expect = None
