"""The TFTP server: a thin asyncio shell around ``Transfer`` (layer 3).

One non-blocking socket listens on port 69 of the PXE address. Each accepted read request gets
its own socket on an ephemeral port, the transfer ID of RFC 1350 section 4, watched with
``loop.add_reader``: no threads, and no asyncio transport in between, because a lock-step
transfer is bounded by how fast one ACK turns into the next DATA. Timers are lazy: an ACK only
moves ``Transfer.deadline``; the one ``call_at`` per transfer re-arms itself when it fires early.

Nothing a client sends can stop the server: a malformed request is logged and dropped, a refused
one (write request, unknown mode, boot policy says no, a name that leaves the root) is answered
with a TFTP error from a fresh port and logged, and a datagram from a stranger on a transfer's
port gets error 5 without disturbing that transfer (RFC 1350 section 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from racker.config import TftpConfig
from racker.errors import EnvironmentProblem, PacketError
from racker.events import Publish, TftpEvent
from racker.tftp.files import FileRefused, FileRoots, OpenedFile
from racker.tftp.packets import ErrorCode, Opcode, Request, decode, encode_error
from racker.tftp.transfer import MODES, Status, Transfer, TransferLimits, max_blksize_for_mtu

log = logging.getLogger("racker.tftp")

Address = tuple[str, int]

# Linux UDP GSO (linux/udp.h): not in Python's socket module before 3.12.
UDP_SEGMENT = 103
UDP_MAX_SEGMENTS = 64
UDP_MAX_PAYLOAD = 65507  # 65535 - 20 (IPv4) - 8 (UDP)

# What a refused client is told: the log gets the detail (real paths), the wire does not.
_CLIENT_TEXT = {
    ErrorCode.FILE_NOT_FOUND: "File not found",
    ErrorCode.ACCESS_VIOLATION: "Access violation",
    ErrorCode.ILLEGAL_OPERATION: "Illegal TFTP operation",
}


def _allow_all(_ip: str) -> bool:
    return True


def _no_mac(_ip: str) -> str | None:
    return None


class TftpServer:
    """Serves files read-only from ``roots`` (searched in order) on ``host:port``."""

    def __init__(
        self,
        host: str,
        roots: Sequence[Path],
        settings: TftpConfig,
        mtu: int,
        publish: Publish,
        *,
        policy: Callable[[str], bool] = _allow_all,
        mac_for: Callable[[str], str | None] = _no_mac,
        port: int = 69,
    ) -> None:
        self.host = host
        self.port = port  # the bound port once started (useful with port=0)
        self.files = FileRoots(roots, settings.case_insensitive)
        self.limits = TransferLimits(
            max_blksize=max_blksize_for_mtu(mtu),
            max_windowsize=settings.max_windowsize,
            timeout=settings.timeout,
            retries=settings.retries,
        )
        self.publish = publish
        self.policy = policy
        self.mac_for = mac_for
        self.transfers: dict[Address, _Session] = {}
        self.gso = True  # cleared the first time the kernel or the device refuses UDP GSO
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise EnvironmentProblem(
                f"TFTP: cannot listen on {self.host}:{self.port}: {exc.strerror}",
                "is another TFTP server (dnsmasq, tftpd-hpa) running, and is the address up?",
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_listener_readable)
        log.info("TFTP listening on %s:%d (roots: %s)", self.host, self.port, self.files.roots)

    async def close(self) -> None:
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for session in list(self.transfers.values()):
            session.transfer.status = Status.FAILED
            session.transfer.error = "server shut down"
            session.finish()

    def _on_listener_readable(self) -> None:
        if self._sock is None:
            return
        for _ in range(64):  # bounded, so a flood cannot starve the transfers
            try:
                data, addr = self._sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("TFTP listener: receive failed: %s", exc)
                return
            try:
                self._on_request(data, addr)
            except Exception:  # a bug in handling one request must not stop the server
                log.exception("TFTP: error handling a request from %s:%d", *addr)

    def _on_request(self, data: bytes, addr: Address) -> None:
        try:
            packet = decode(data)
        except PacketError as exc:
            log.warning("TFTP: dropped a malformed packet from %s:%d: %s", *addr, exc.message)
            return
        if not isinstance(packet, Request):
            log.warning(
                "TFTP: dropped a %s sent to port %d by %s:%d",
                type(packet).__name__,
                self.port,
                *addr,
            )
            return
        if addr in self.transfers:
            return  # the client retransmitted its request; the transfer already answers it
        ip = addr[0]
        if packet.opcode == Opcode.WRQ:
            self._refuse(
                addr,
                packet,
                ErrorCode.ACCESS_VIOLATION,
                "write requests are refused (read-only server)",
            )
            return
        if packet.mode not in MODES:
            self._refuse(
                addr,
                packet,
                ErrorCode.ILLEGAL_OPERATION,
                f"transfer mode {packet.mode!r} not supported",
            )
            return
        try:
            allowed = self.policy(ip)
        except Exception:
            log.exception("TFTP: boot policy failed for %s; refusing", ip)
            allowed = False
        if not allowed:
            self._refuse(
                addr,
                packet,
                ErrorCode.ACCESS_VIOLATION,
                "boot policy: no boot files for this client",
            )
            return
        try:
            opened = self.files.open(packet.filename, packet.mode)
        except FileRefused as exc:
            self._refuse(addr, packet, exc.code, exc.message)
            return
        if self._loop is None:
            opened.close()
            return
        try:
            session = _Session(self, self._loop, addr, packet, opened)
        except OSError as exc:
            opened.close()
            log.error("TFTP: cannot open a transfer socket for %s:%d: %s", *addr, exc)
            return
        self.transfers[addr] = session
        session.begin()

    def _refuse(self, addr: Address, request: Request, code: ErrorCode, reason: str) -> None:
        log.warning("TFTP: refused %r to %s:%d: %s", request.filename, *addr, reason)
        text = _CLIENT_TEXT.get(code, reason)
        # From a fresh port, as the transfer would have come (RFC 1350 section 4).
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind((self.host, 0))
            sock.sendto(encode_error(code, text), addr)
        self._event("transfer-failed", addr, request.filename, error=reason)

    def _event(
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
    ) -> None:
        try:
            mac = self.mac_for(addr[0])
        except Exception:
            log.exception("TFTP: mac_for(%s) failed", addr[0])
            mac = None
        event = TftpEvent(
            kind=kind,
            mac=mac,
            ts=time.time(),
            peer=f"{addr[0]}:{addr[1]}",
            file=file,
            bytes=size,
            blksize=blksize,
            windowsize=windowsize,
            duration=duration,
            resends=resends,
            error=error,
        )
        try:
            self.publish(event)
        except Exception:
            log.exception("TFTP: publishing %s failed", kind)


class _Session:
    """One transfer: its socket, its lazy timer and its pending sends."""

    def __init__(
        self,
        server: TftpServer,
        loop: asyncio.AbstractEventLoop,
        peer: Address,
        request: Request,
        opened: OpenedFile,
    ) -> None:
        self.server = server
        self.loop = loop
        self.clock = loop.time  # the clock call_at() uses, bound once for the hot path
        self.peer = peer
        self.request = request
        self.opened = opened
        self.transfer = Transfer(opened.source, request.options, server.limits)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((server.host, 0))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
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
        t = self.transfer
        log.info(
            "TFTP: %s:%d reads %r (%d bytes, blksize %d, windowsize %d)",
            *self.peer,
            self.request.filename,
            t.source.size,
            t.blksize,
            t.windowsize,
        )
        self.server._event(
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
        # Drain what has arrived: a fast client's next ACK is often here before we return to
        # the selector (measured: fewer CPU seconds per block than one datagram per wake-up).
        sock, peer, transfer = self.sock, self.peer, self.transfer
        for _ in range(64):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("TFTP: receive failed on the transfer to %s:%d: %s", *peer, exc)
                return
            if addr != peer:
                self._stranger(addr)
                continue
            self._send(transfer.on_datagram(data, self.clock()))
            if transfer.status is not Status.RUNNING:
                self.finish()
                return

    def _stranger(self, addr: Address) -> None:
        # RFC 1350 section 4: answer a stranger with error 5, keep the transfer going.
        log.warning(
            "TFTP: packet from unknown TID %s:%d on the transfer to %s:%d", *addr, *self.peer
        )
        with contextlib.suppress(OSError):
            self.sock.sendto(encode_error(ErrorCode.UNKNOWN_TID, "Unknown transfer ID"), addr)

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

    def _send(self, datagrams: list[bytes]) -> None:
        if self.pending:
            self.pending += datagrams
            return
        sendto, peer = self.sock.sendto, self.peer
        if self.gso and len(datagrams) > 1:
            self._send_gso(datagrams)
            return
        for i, datagram in enumerate(datagrams):
            try:
                sendto(datagram, peer)
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
                self.sock.sendto(b"".join(datagrams[i : i + batch]), self.peer)
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
        if self.pending:
            self.loop.remove_writer(self.sock.fileno())
            # The last datagram (an ERROR) may still be queued; best effort before closing.
            with contextlib.suppress(OSError):
                for datagram in self.pending:
                    self.sock.sendto(datagram, self.peer)
        self.sock.close()
        self.opened.close()
        self.server.transfers.pop(self.peer, None)
        t = self.transfer
        duration = time.monotonic() - self.started
        ok = t.status is Status.FINISHED
        if ok:
            log.info(
                "TFTP: %s:%d got %r in %.2f s (%d resends)",
                *self.peer,
                self.request.filename,
                duration,
                t.resends,
            )
        else:
            log.warning(
                "TFTP: transfer of %r to %s:%d failed: %s",
                self.request.filename,
                *self.peer,
                t.error,
            )
        self.server._event(
            "transfer-finished" if ok else "transfer-failed",
            self.peer,
            self.request.filename,
            size=t.bytes_acked,
            blksize=t.blksize,
            windowsize=t.windowsize,
            duration=round(duration, 6),
            resends=t.resends,
            error=t.error,
        )
