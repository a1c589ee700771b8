"""All transfers on one port (layer 3, used by ``server.TftpServer`` when ``single_port``).

The per-transfer mode (``session.Session``) gives every transfer its own port, two sockets and
two readers in the event loop, so a boot storm of N lock-step transfers costs, per block, one
loop callback, one ``recv`` and one ``send`` on N different descriptors. Here one unconnected
socket on one ephemeral port (not port 69: a flood of requests there must not crowd out the
ACKs of running transfers) carries every transfer, demultiplexed by the client's (ip, port),
as dnsmasq's ``tftp-single-port`` does. One wake-up drains what is queued, up to one datagram
per running transfer and at most ``DRAIN``: in a storm the ACKs of many transfers arrive
between two wake-ups, so the loop's callback machinery and ``epoll_wait`` are paid once for
all of them, not once per block.

RFC 1350 section 4 lets the server choose its TID; it is the same for all transfers here. A
client learns it from the first DATA or OACK, as every client does. Two transfers from one
client port cannot run at once in either mode (the server keys its transfers by that address).
A datagram from an address with no transfer gets error 5 (RFC 1350 section 4), except a late
ACK from a transfer that just ended, which is dropped: the client already has the file.

Windows go out with UDP GSO as in ``session``, the segment size given per ``sendmsg`` as a
control message, since the transfers sharing the socket have different block sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
import time
from collections import OrderedDict, deque

from racker.tftp.admission import Accept
from racker.tftp.packets import ErrorCode, Request, encode_error
from racker.tftp.session import (
    UDP_MAX_PAYLOAD,
    UDP_MAX_SEGMENTS,
    UDP_SEGMENT,
    Address,
    SessionOwner,
    TransferTimer,
    report_end,
)
from racker.tftp.transfer import Status, Transfer

log = logging.getLogger("racker.tftp")

DRAIN = 256  # datagrams per wake-up at most, so other work on the loop gets its turn
PENDING_LIMIT = 16384  # datagrams queued while the socket buffer is full; past it, dropped
RECENT = 1024  # finished transfers whose late ACKs are dropped silently


class SharedPort:
    """The one socket every transfer uses, and the loop that serves it."""

    def __init__(self, server: SessionOwner, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.clock = loop.time
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((server.host, 0))
            self.sock.setblocking(False)
            # A storm's ACKs wait here between two wake-ups: room for a few hundred.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            self.sock.close()
            raise
        self.port = self.sock.getsockname()[1]
        self.sessions: dict[Address, SharedSession] = {}
        self.pending: deque[tuple[list[bytes], Address, int]] = deque()
        self.dropped_sends = 0  # datagrams dropped because the queue was full (the timer resends)
        self.recent: OrderedDict[Address, None] = OrderedDict()
        loop.add_reader(self.sock.fileno(), self._on_readable)

    def close(self) -> None:
        for session in list(self.sessions.values()):
            session.transfer.abort("server shut down")
            session.finish()
        self.loop.remove_reader(self.sock.fileno())
        if self.pending:
            self.loop.remove_writer(self.sock.fileno())
        self.sock.close()

    def _on_readable(self) -> None:
        recvfrom, sendto = self.sock.recvfrom, self.sock.sendto
        sessions = self.sessions
        now = self.clock()  # one clock read per wake-up: deadlines are a second away
        # Each transfer has at most one ACK in flight (a window is answered by one ACK), so
        # more receives than transfers would only meet EAGAIN: with one lock-step transfer
        # that is a failing syscall and an exception per block. Whatever is left (duplicates,
        # strangers) wakes the level-triggered selector again.
        for _ in range(min(DRAIN, len(sessions) or 1)):
            try:
                data, addr = recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("TFTP: receive on the shared port failed: %s", exc)
                return
            session = sessions.get(addr)
            if session is None:
                self._stranger(data, addr)
                continue
            transfer = session.transfer
            datagram = transfer.step(data, now)
            if datagram is not None and not self.pending:
                try:
                    sendto(datagram, addr)
                except BlockingIOError:
                    self.send([datagram], addr, 0)
                except OSError as exc:  # e.g. no route: the timer retries, then gives up
                    log.debug("TFTP: send to %s:%d failed: %s", *addr, exc)
                continue
            if datagram is not None:
                self.send([datagram], addr, 0)
                continue
            self.send(transfer.on_datagram(data, now), addr, session.gso)
            if transfer.status is not Status.RUNNING:
                session.finish()

    def _stranger(self, data: bytes, addr: Address) -> None:
        if addr in self.recent and data[:2] == b"\0\4":
            return  # a late or duplicate ACK of a transfer that ended: nothing to say
        # RFC 1350 section 4: answer a stranger with error 5.
        self.server.log_budget.note(
            addr[0], "unknown TID", "TFTP: packet from unknown TID %s:%d on the shared port %d",
            *addr, self.port,
        )  # fmt: skip
        with contextlib.suppress(OSError):
            self.sock.sendto(encode_error(ErrorCode.UNKNOWN_TID, "Unknown transfer ID"), addr)

    def ended(self, addr: Address) -> None:
        self.sessions.pop(addr, None)
        self.recent[addr] = None
        self.recent.move_to_end(addr)
        if len(self.recent) > RECENT:
            self.recent.popitem(last=False)

    def send(self, datagrams: list[bytes], addr: Address, gso: int) -> None:
        """Send now, or queue behind what waits for the socket to drain (in order)."""
        if not datagrams:
            return
        if self.pending:
            self._queue(datagrams, addr, gso)
            return
        left = self._send_now(datagrams, addr, gso)
        if left:
            self._queue(left, addr, gso)
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _queue(self, datagrams: list[bytes], addr: Address, gso: int) -> None:
        if len(self.pending) >= PENDING_LIMIT:
            self.dropped_sends += len(datagrams)
            return
        self.pending.append((datagrams, addr, gso))

    def _send_now(self, datagrams: list[bytes], addr: Address, gso: int) -> list[bytes]:
        """What could not be sent because the socket buffer is full (empty: all sent)."""
        if gso and len(datagrams) > 1 and self.server.gso:
            return self._send_gso(datagrams, addr, gso)
        for i, datagram in enumerate(datagrams):
            try:
                self.sock.sendto(datagram, addr)
            except BlockingIOError:
                return datagrams[i:]
            except OSError as exc:
                log.debug("TFTP: send to %s:%d failed: %s", *addr, exc)
                return []
        return []

    def _send_gso(self, datagrams: list[bytes], addr: Address, segment: int) -> list[bytes]:
        batch = max(1, min(UDP_MAX_SEGMENTS, UDP_MAX_PAYLOAD // segment))
        cmsg = [(socket.SOL_UDP, UDP_SEGMENT, segment.to_bytes(2, sys.byteorder))]
        for i in range(0, len(datagrams), batch):
            try:
                # One sendmsg gathers the window; the kernel cuts it into datagrams.
                self.sock.sendmsg(datagrams[i : i + batch], cmsg, 0, addr)
            except BlockingIOError:
                return datagrams[i:]
            except OSError as exc:
                if exc.errno not in (errno.EIO, errno.EINVAL, errno.EOPNOTSUPP):
                    log.debug("TFTP: send to %s:%d failed: %s", *addr, exc)
                    return []
                log.info("TFTP: UDP GSO unavailable (%s); sending one datagram per block", exc)
                self.server.gso = False
                return self._send_now(datagrams[i:], addr, 0)
        return []

    def _on_writable(self) -> None:
        while self.pending:
            datagrams, addr, gso = self.pending[0]
            left = self._send_now(datagrams, addr, gso)
            if left:
                self.pending[0] = (left, addr, gso)
                return
            self.pending.popleft()
        self.loop.remove_writer(self.sock.fileno())


class SharedSession(TransferTimer):
    """One transfer served from the shared port: its state, its lazy timer."""

    def __init__(
        self,
        server: SessionOwner,
        port: SharedPort,
        peer: Address,
        request: Request,
        accepted: Accept,
    ) -> None:
        self.server = server
        self.port = port
        self.loop = port.loop
        self.peer = peer
        self.request = request
        self.opened = accepted.opened
        self.transfer = Transfer(
            accepted.opened.source, request.options, server.limits, accepted.negotiated
        )
        self.timer: asyncio.TimerHandle | None = None
        self.started = time.monotonic()
        self.done = False
        windowed = self.transfer.windowsize > 1
        self.gso = self.transfer.blksize + 4 if windowed and server.gso else 0

    def begin(self) -> None:
        self.port.sessions[self.peer] = self
        t = self.transfer
        log.info(
            "TFTP: %s:%d reads %r (%d bytes, blksize %d, windowsize %d; shared port %d)",
            *self.peer, self.request.filename, t.source.size, t.blksize, t.windowsize,
            self.port.port,
        )  # fmt: skip
        self.server.event(
            "transfer-started",
            self.peer,
            self.request.filename,
            size=t.source.size,
            blksize=t.blksize,
            windowsize=t.windowsize,
        )
        self.port.send(t.start(self.loop.time()), self.peer, self.gso)
        self._arm()

    def _send(self, datagrams: list[bytes]) -> None:
        self.port.send(datagrams, self.peer, self.gso)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.port.ended(self.peer)
        self.opened.close()
        self.server.ended(self.peer)
        report_end(self.server, self.peer, self.request.filename, self.transfer, self.started)
