"""The passive rogue-DHCP watcher of ``racker serve`` (layer 3): frames in, ``RogueTracker``
decides, a warning and an event out.

Its own AF_PACKET socket on the PXE interface, with ``BPF_SERVER_REPLIES`` attached, so the
kernel hands over only replies from port 67 to port 68: nothing of the TFTP and HTTP traffic,
nothing of the clients' requests (which the DHCP server's socket reads). The socket is bound to
ETH_P_IP, not ETH_P_ALL: the kernel taps a host's outgoing frames only for ETH_P_ALL sockets,
so racker's own OFFERs and ACKs never reach it, and no outgoing frame is cloned for it. A frame
from the interface's own MAC is ignored all the same (belt and braces).

Bounded: ``FrameBudget`` parses at most ``frames_per_second`` frames a second. When a second's
budget is spent the watcher stops reading until the next second: the kernel drops what does not
fit the socket's (default-sized) buffer meanwhile, and those drops are counted from
PACKET_STATISTICS. A flood thus costs the kernel's filter and a copy per frame, not a system call
and a Python wake-up each (bench/rogue.py: 4.3 µs of racker's CPU per flood frame when every
frame was read and discarded). The tracker keeps at most ``max_servers`` servers and a bounded
number of warnings a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Callable

from racker.dhcp.frames import ETH_P_IP
from racker.dhcp.rogue import (
    BPF_SERVER_REPLIES,
    Decision,
    FrameBudget,
    RogueTracker,
    ServerReply,
    parse_reply,
)
from racker.dhcp.sockets import attach_filter
from racker.errors import EnvironmentProblem, PacketError
from racker.events import Publish, RogueDhcpEvent

log = logging.getLogger("racker.dhcp")

SOL_PACKET = 263
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}, zeroed when read
_BATCH = 64  # frames read per wake-up before yielding to the loop


class RogueWatcher:
    """Watches ``interface`` for DHCP replies of servers other than racker."""

    def __init__(
        self,
        interface: str,
        publish: Publish,
        *,
        tracker: RogueTracker | None = None,
        frames_per_second: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.interface = interface
        self.tracker = tracker or RogueTracker()
        self.budget = FrameBudget(frames_per_second)
        self.malformed = 0
        self._held_told = 0  # tracker.held when last logged
        self._publish = publish
        self._clock = clock
        self._sock: socket.socket | None = None
        self._mac = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._paused: asyncio.TimerHandle | None = None  # reading stops until the next second

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._sock = _reply_socket(self.interface)
        except OSError as exc:
            raise EnvironmentProblem(
                f"rogue-DHCP watcher: cannot open a packet socket on {self.interface!r}:"
                f" {exc.strerror}",
                "run as root (CAP_NET_RAW) on an existing interface",
            ) from None
        self._mac = self._sock.getsockname()[4]
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    async def close(self) -> None:
        if self._sock is None:
            return
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        elif self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self.budget.skipped += _kernel_drops(self._sock)
        self._sock.close()
        self._sock = None
        tracker = self.tracker
        if tracker.held or self.budget.skipped:
            log.warning(
                "rogue DHCP: %d replies seen in all, %d warnings held back, %d frames not parsed"
                " (over %d/s)",
                tracker.replies,
                tracker.held,
                self.budget.skipped,
                self.budget.per_second,
            )

    def servers_seen(self) -> int:
        """Distinct rogue servers seen in the tracker's window (the last hour): a gauge."""
        return len(self.tracker.active(self._clock()))

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        now = self._clock()
        for _ in range(_BATCH):
            try:
                frame = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. the interface went down: keep serving, say so
                log.warning("rogue DHCP: reading %s failed: %s", self.interface, exc)
                return
            if frame[6:12] == self._mac:
                continue
            if not self.budget.allow(now):
                self._pause(sock, now)
                return
            self.handle(frame, now)

    def _pause(self, sock: socket.socket, now: float) -> None:
        """This second's frames are parsed: read nothing more until the next one."""
        if self._loop is None:
            return
        self._loop.remove_reader(sock.fileno())
        self._paused = self._loop.call_later(int(now) + 1 - now, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if self._sock is None or self._loop is None:
            return
        self.budget.skipped += _kernel_drops(self._sock)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def handle(self, frame: bytes, now: float) -> None:
        try:
            reply = parse_reply(frame)
        except PacketError:
            self.malformed += 1  # counted only: a malformed reply is not worth a line each
            return
        if reply is None:
            return
        decision = self.tracker.observe(reply.server_ip, reply.server_mac, reply.message_type, now)
        if decision is Decision.WARN:
            self._warn(reply, now)

    def _warn(self, reply: ServerReply, now: float) -> None:
        held = self.tracker.held - self._held_told
        if held:  # told with the first warning of the next minute, so the log stays bounded
            self._held_told = self.tracker.held
            log.warning(
                "rogue DHCP: %d more sightings of servers not yet warned about were held back"
                " (%d warnings a minute at most); racker_dhcp_rogue_servers counts them",
                held,
                self.tracker.max_warnings,
            )
        server = self.tracker.get(reply.server_ip, reply.server_mac)
        replies = server.replies if server is not None else 1
        log.warning(
            "rogue DHCP server on %s: %s (MAC %s) answered with %s%s to %s; nodes that take"
            " its answers will not boot from racker (%d replies seen)",
            self.interface,
            reply.server_ip,
            reply.server_mac,
            reply.message_type,
            f" of {reply.offered}" if reply.offered else "",
            reply.client_mac,
            replies,
        )
        self._publish(
            RogueDhcpEvent(
                "rogue-dhcp",
                None,
                now,
                server_ip=reply.server_ip,
                server_mac=reply.server_mac,
                message_type=reply.message_type,
                interface=self.interface,
                offered=reply.offered,
                replies=replies,
            )
        )


def _kernel_drops(sock: socket.socket) -> int:
    """Frames the kernel dropped for want of buffer space since the last call."""
    try:
        _packets, drops = struct.unpack("II", sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
    except OSError:  # not a packet socket (tests feed a socketpair)
        return 0
    return int(drops)


def _reply_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        # Filter before bind, so nothing unfiltered is queued in between.
        attach_filter(sock, BPF_SERVER_REPLIES)
        sock.bind((interface, ETH_P_IP))
        sock.setblocking(False)
    except OSError:
        with contextlib.suppress(OSError):
            sock.close()
        raise
    return sock
