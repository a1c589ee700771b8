"""One accepted TFTP transfer on its own socket (layer 3, used by ``server.TftpServer``).

The session owns the transfer's port (its TID: a socket connected to the client, and a guard
socket for strangers), feeds what arrives to the pure ``Transfer`` and sends what that returns.
The lock-step hot path is ``Transfer.step``: one recv, one bytes comparison, one send per
block; logging, events and timers happen per transfer, never per block. Timers are lazy: an ACK
only moves ``Transfer.deadline``; the one ``call_at`` per transfer re-arms itself when it fires
early.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from typing import TYPE_CHECKING, Protocol

from racker.logbudget import LogBudget
from racker.tftp.admission import Accept
from racker.tftp.packets import ErrorCode, Request, encode_error
from racker.tftp.transfer import Status, Transfer, TransferLimits

if TYPE_CHECKING:
    from racker.tftp.shared import SharedSession

log = logging.getLogger("racker.tftp")

Address = tuple[str, int]

# Linux UDP GSO (linux/udp.h): not in Python's socket module before 3.12.
UDP_SEGMENT = 103
UDP_MAX_SEGMENTS = 64
UDP_MAX_PAYLOAD = 65507  # 65535 - 20 (IPv4) - 8 (UDP)


class SessionOwner(Protocol):
    """What a session needs from its server."""

    host: str
    limits: TransferLimits
    gso: bool  # cleared the first time the kernel or the device refuses UDP GSO
    transfers: dict[Address, Session | SharedSession]

    log_budget: LogBudget

    def ended(self, addr: Address) -> None: ...

    def event(
        self,
        kind: str,
        addr: Address,
        file: str,
        *,
        size: int = 0,
        blksize: int = 512,
        windowsize: int = 1,
        duration: float = 0.0,
        resends: int = 0,
        error: str = "",
    ) -> None: ...


def _transfer_sockets(host: str, peer: Address) -> tuple[socket.socket, socket.socket]:
    """Two sockets on one fresh port, the transfer's TID (RFC 1350 section 4).

    ``sock`` is connect()ed to the peer: the kernel delivers only the peer's datagrams to it and
    ``send``/``recv`` skip the route lookup and the address conversions of ``sendto``/
    ``recvfrom`` on every block. A connected socket never sees a stranger's datagram, so
    ``guard``, bound to the same port but not connected, receives those (the kernel prefers the
    connected socket for the peer's 4-tuple) and answers them with error 5. The port is chosen
    while ``guard`` is bound alone, without SO_REUSEADDR, so it is not shared with any other
    socket; SO_REUSEADDR is set afterwards only to let ``sock`` join it.
    """
    guard = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        guard.bind((host, 0))
        guard.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(guard.getsockname())
        sock.connect(peer)
        guard.setblocking(False)
        sock.setblocking(False)
    except OSError:
        guard.close()
        sock.close()
        raise
    return guard, sock


class TransferTimer:
    """The lazy retransmission timer both session kinds share: one timer per transfer, set
    for its deadline; an ACK only moves the deadline, and a timer that fires early re-arms."""

    loop: asyncio.AbstractEventLoop
    transfer: Transfer
    timer: asyncio.TimerHandle | None
    done: bool

    def _send(self, datagrams: list[bytes]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError

    def _on_timer(self) -> None:
        self.timer = None
        if self.done:
            return
        now = self.loop.time()
        if now < self.transfer.deadline:
            self._arm()  # an ACK moved the deadline since this timer was set
            return
        self._send(self.transfer.on_timeout(now))
        if self.transfer.status is not Status.RUNNING:
            self.finish()
        else:
            self._arm()

    def _arm(self) -> None:
        if self.timer is None and not self.done:
            self.timer = self.loop.call_at(self.transfer.deadline, self._on_timer)


class Session(TransferTimer):
    """One transfer: its sockets, its lazy timer and its pending sends."""

    def __init__(
        self,
        server: SessionOwner,
        loop: asyncio.AbstractEventLoop,
        peer: Address,
        request: Request,
        accepted: Accept,
    ) -> None:
        self.server = server
        self.loop = loop
        self.clock = loop.time  # the clock call_at() uses, bound once for the hot path
        self.peer = peer
        self.request = request
        self.opened = accepted.opened
        self.transfer = Transfer(
            accepted.opened.source, request.options, server.limits, accepted.negotiated
        )
        self.guard, self.sock = _transfer_sockets(server.host, peer)
        self.send = self.sock.send  # bound once for the hot path
        self.recv = self.sock.recv
        self.pending: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None
        self.started = time.monotonic()
        self.done = False
        self.gso = 0  # segment size when a window goes out as one UDP GSO send
        if server.gso and self.transfer.windowsize > 1:
            self._enable_gso(self.transfer.blksize + 4)

    def _enable_gso(self, segment: int) -> None:
        """Send each window with one syscall: the kernel cuts it into datagrams (UDP GSO).

        Every DATA of a window but the last is exactly blksize + 4 bytes, which is what
        UDP_SEGMENT needs (only the last segment may be shorter); a 16-block window costs one
        sendto instead of 16. Kernels without it (before 4.18) fall back to one send per block.
        """
        try:
            self.sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, segment)
        except OSError:
            self.server.gso = False
            return
        self.gso = segment
        self.gso_batch = max(1, min(UDP_MAX_SEGMENTS, UDP_MAX_PAYLOAD // segment))

    def begin(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self._on_readable)
        self.loop.add_reader(self.guard.fileno(), self._on_stranger)
        t = self.transfer
        log.info(
            "TFTP: %s:%d reads %r (%d bytes, blksize %d, windowsize %d)",
            *self.peer,
            self.request.filename,
            t.source.size,
            t.blksize,
            t.windowsize,
        )
        self.server.event(
            "transfer-started",
            self.peer,
            self.request.filename,
            size=t.source.size,
            blksize=t.blksize,
            windowsize=t.windowsize,
        )
        self._send(t.start(self.loop.time()))
        self._arm()

    def _on_readable(self) -> None:
        # One datagram per wake-up: in lock-step the next ACK cannot be queued yet (the client
        # has not got the DATA), so a second recv() would only fail with EAGAIN, a syscall and
        # an exception on every block (docs/benchmarks.md, "TFTP"). The selector is
        # level-triggered: anything still queued wakes us again.
        try:
            data = self.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # ECONNREFUSED: ICMP says the client's port is gone
            log.debug("TFTP: receive failed on the transfer to %s:%d: %s", *self.peer, exc)
            return
        transfer = self.transfer
        datagram = transfer.step(data, self.clock())
        if datagram is not None and not self.pending:
            try:
                self.send(datagram)
            except BlockingIOError:
                self._send([datagram])  # queued until the socket is writable again
            except OSError as exc:  # e.g. ECONNREFUSED: the timer retries, then gives up
                log.debug("TFTP: send to %s:%d failed: %s", *self.peer, exc)
            return
        if datagram is not None:
            self._send([datagram])
            return
        self._send(transfer.on_datagram(data, self.clock()))
        if transfer.status is not Status.RUNNING:
            self.finish()

    def _on_stranger(self) -> None:
        for _ in range(16):  # bounded, so a flood cannot starve the transfers
            try:
                _, addr = self.guard.recvfrom(65536)
            except OSError:
                return
            self._stranger(addr)

    def _stranger(self, addr: Address) -> None:
        # RFC 1350 section 4: answer a stranger with error 5, keep the transfer going.
        self.server.log_budget.note(
            addr[0], "unknown TID", "TFTP: packet from unknown TID %s:%d on the transfer to %s:%d",
            *addr, *self.peer,
        )  # fmt: skip
        with contextlib.suppress(OSError):
            self.guard.sendto(encode_error(ErrorCode.UNKNOWN_TID, "Unknown transfer ID"), addr)

    def _send(self, datagrams: list[bytes]) -> None:
        if self.pending:
            self.pending += datagrams
            return
        if self.gso and len(datagrams) > 1:
            self._send_gso(datagrams)
            return
        send = self.send
        for i, datagram in enumerate(datagrams):
            try:
                send(datagram)
            except BlockingIOError:
                self.pending = datagrams[i:]
                self.loop.add_writer(self.sock.fileno(), self._on_writable)
                return
            except OSError as exc:  # e.g. no route: the timer retries, then gives up
                log.debug("TFTP: send to %s:%d failed: %s", *self.peer, exc)
                return

    def _send_gso(self, datagrams: list[bytes]) -> None:
        batch = self.gso_batch
        for i in range(0, len(datagrams), batch):
            try:
                # sendmsg gathers the datagrams into the one GSO send: no joined copy.
                self.sock.sendmsg(datagrams[i : i + batch])
            except BlockingIOError:
                self.pending = datagrams[i:]
                self.loop.add_writer(self.sock.fileno(), self._on_writable)
                return
            except OSError as exc:
                if exc.errno not in (errno.EIO, errno.EINVAL, errno.EOPNOTSUPP):
                    log.debug("TFTP: send to %s:%d failed: %s", *self.peer, exc)
                    return
                # The egress device cannot checksum segments (EIO): send block by block.
                log.info("TFTP: UDP GSO unavailable (%s); sending one datagram per block", exc)
                self.server.gso = False
                self.gso = 0
                with contextlib.suppress(OSError):
                    self.sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 0)
                self._send(datagrams[i:])
                return

    def _on_writable(self) -> None:
        pending, self.pending = self.pending, []
        self.loop.remove_writer(self.sock.fileno())
        self._send(pending)

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.loop.remove_reader(self.guard.fileno())
        if self.pending:
            self.loop.remove_writer(self.sock.fileno())
            # The last datagram (an ERROR) may still be queued; best effort before closing.
            with contextlib.suppress(OSError):
                for datagram in self.pending:
                    self.send(datagram)
        self.sock.close()
        self.guard.close()
        self.opened.close()
        self.server.ended(self.peer)
        report_end(self.server, self.peer, self.request.filename, self.transfer, self.started)


def report_end(
    server: SessionOwner, peer: Address, filename: str, t: Transfer, started: float
) -> None:
    """The log line and the event of a transfer that is over (both session kinds)."""
    duration = time.monotonic() - started
    ok = t.status is Status.FINISHED
    if ok:
        log.info("TFTP: %s:%d got %r in %.2f s (%d resends)", *peer, filename, duration, t.resends)
    elif t.size_probe:
        log.info("TFTP: %s:%d asked the size of %r (a tsize probe)", *peer, filename)
    else:
        log.warning("TFTP: transfer of %r to %s:%d failed: %s", filename, *peer, t.error)
    kind = "transfer-finished" if ok else "size-probe" if t.size_probe else "transfer-failed"
    server.event(
        kind,
        peer,
        filename,
        size=t.bytes_acked,
        blksize=t.blksize,
        windowsize=t.windowsize,
        duration=round(duration, 6),
        resends=t.resends,
        error=t.error,
    )
