"""The DHCP server's asyncio transport (layer 3): sockets in, ``DhcpCore`` decides, frames out.

- Receiving: clients on the link through an AF_PACKET socket bound to the PXE interface, with
  a classic BPF filter so the kernel hands over only IPv4/UDP to port 67 from other ports;
  relay agents (which send from port 67, RFC 1542 §5.4) through a UDP socket bound to port 67
  on the interface, whose filter keeps only what comes from port 67. Routed traffic thus
  takes the kernel's ordinary UDP path, as with any DHCP server, instead of a packet-socket
  copy and the UDP stack both. A datagram wakes the loop (``loop.add_reader``, no threads),
  which drains both sockets and then, instead of waking for each datagram, polls them every
  ``POLL_INTERVAL`` (1 ms) while there is work: a lone request is answered at once, and under
  load a wake-up serves several (perfdhcp at 4000 exchanges/s: the server's CPU per exchange
  down by a third; see bench/dhcp.py). A poll that finds nothing goes back to waking.
- Sending: to a client on the link, a whole Ethernet frame built here (a client without an
  address cannot be reached through the IP stack: RFC 2131 §4.1); to a relay agent, a normal
  UDP datagram from port 67 (the kernel routes and resolves it).
- Persisting (group commit, as ISC dhcpd and Kea commit before they ACK: see
  ``racker.dhcp.commits``): every reply about an address whose lease change is not committed
  yet (an ACK, above all) is held until its batch is committed; replies about settled
  addresses (OFFERs, NAKs, a cached ACK of a stored lease) go out at once. While a commit is
  in flight the sockets are polled, and a poll notices its completion.
- Reloading (SIGHUP): ``reload(settings)`` swaps in a core built from new settings, holding the
  leases just persisted; the sockets stay as they are.
- Bad input: a malformed packet raises ``PacketError`` in the core; it is dropped, counted
  (``dropped``) and logged within a budget (``racker.logbudget``: the first lines per sender
  and kind a minute, then one line of how many were left out). Nothing a client sends stops
  the server.
- The sockets' set-up (BPF filters, buffers) is in ``racker.dhcp.sockets``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from racker.dhcp.commits import GroupCommit, Held, LeaseRow, LeaseStore
from racker.dhcp.core import DhcpCore, ReceiveInfo
from racker.dhcp.frames import build_frame, parse_frame
from racker.dhcp.leases import LeaseTable, PersistedLease
from racker.dhcp.options import SERVER_PORT
from racker.dhcp.reply import Destination
from racker.dhcp.sockets import packet_socket, relay_socket
from racker.errors import EnvironmentProblem, PacketError
from racker.events import Event, Publish
from racker.logbudget import LogBudget

if TYPE_CHECKING:
    from racker.dhcp.settings import DhcpSettings

log = logging.getLogger("racker.dhcp")

_U32 = struct.Struct("!I")
_BATCH = 256  # datagrams drained per wake-up before yielding to the loop
# A commit starts this long after the first change it holds, so that the changes of several
# drains share it: a few ms more for an ACK, many fewer commits (and thread hand-offs) under load.
COMMIT_WINDOW = 0.002
# Under load the sockets are polled this often instead of waking the loop for every datagram
# (as NAPI does for a NIC): a few more datagrams per wake-up, many fewer wake-ups.
POLL_INTERVAL = 0.001
_RELAYED, _DIRECT = ReceiveInfo(relayed=True), ReceiveInfo(relayed=False)  # not one per packet


__all__ = ["COMMIT_WINDOW", "DhcpServer", "LeaseRow", "LeaseStore"]


class DhcpServer:
    """Serves ``core`` on ``interface``; events go to ``publish``, lease changes to
    ``lease_store`` (None: kept in memory only)."""

    def __init__(
        self,
        interface: str,
        core: DhcpCore,
        publish: Publish,
        lease_store: LeaseStore | None = None,
        *,
        clock: Callable[[], float] = time.time,
        commit_window: float = COMMIT_WINDOW,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.interface = interface
        self.core = core
        self._store = lease_store
        self._publish = publish
        self._clock = clock
        self.commits = GroupCommit(
            lease_store, self._table, self._release, self._polled, clock, commit_window
        )
        self._poll_interval = poll_interval
        self._tick: asyncio.TimerHandle | None = None  # polling: the next poll of both sockets
        self._polling = False  # read on the store's thread: the loop itself looks for commits
        self._reading = False
        self._server_ip = core.settings.server.packed
        self._raw: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._mac = b""
        # Bad input is logged within a budget per source and kind: a flood stays a few lines.
        self.log_budget = LogBudget(log)
        self._budget_timer: asyncio.TimerHandle | None = None
        self.received = 0
        self.sent = 0
        self._dropped = 0

    @property
    def dropped(self) -> int:
        """Datagrams dropped: malformed, a full send queue, replies of a failed commit."""
        return self._dropped + self.commits.withheld

    @property
    def _loop(self) -> asyncio.AbstractEventLoop | None:
        return self.commits.loop

    @_loop.setter
    def _loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.commits.loop = loop

    def _table(self) -> LeaseTable:
        return self.core.leases

    def _polled(self) -> bool:
        return self._polling

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._raw = packet_socket(self.interface)
            self._udp = relay_socket(self.interface)
        except OSError as exc:
            self._close_sockets()
            raise EnvironmentProblem(
                f"DHCP: cannot open sockets on interface {self.interface!r}: {exc.strerror}",
                "run as root (CAP_NET_RAW, port 67) on an existing interface; "
                "stop any other DHCP server on it (dnsmasq, isc-dhcp-server)",
            ) from None
        self._mac = self._raw.getsockname()[4]
        self._reading = True
        self._add_readers()
        self._budget_timer = self._loop.call_later(self.log_budget.period, self._flush_budget)
        log.info("DHCP serving on %s as %s", self.interface, self.core.settings.server)

    async def close(self) -> None:
        """Stop reading, commit every pending lease change and send the replies held for it
        (no ACKed lease is lost, no committed ACK unsent), then close the sockets."""
        if self._loop is not None:
            self._reading = False
            if not self._polling:
                self._remove_readers()
        await self.commits.settle()
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        self._polling = False
        self._close_sockets()
        if self._budget_timer is not None:
            self._budget_timer.cancel()
            self._budget_timer = None
        self.log_budget.flush()

    def _flush_budget(self) -> None:
        self.log_budget.flush()
        if self._loop is not None and self._raw is not None:
            self._budget_timer = self._loop.call_later(self.log_budget.period, self._flush_budget)

    def flush(self) -> None:
        """Commit every pending lease change now and send the replies held for it; blocks the
        caller until the store has committed (SIGHUP's reload)."""
        self.commits.flush()

    def reload(self, settings: DhcpSettings) -> None:
        """Serve with new settings from now on: pending lease changes are persisted, and the
        new core holds the leases as stored (without a store: as this core holds them)."""
        self.flush()
        if self._store is not None:
            leases: Iterable[PersistedLease] = self._store.leases()
        else:
            leases = self.core.leases.held()
        self.core = self.core.reconfigured(settings, leases)

    def lease_holder(self, ip: str) -> str | None:
        """The MAC the lease table has at ``ip`` (dotted), if any: who a pool client is."""
        entry = self.core.leases.at(int(ipaddress.IPv4Address(ip)))
        return entry.mac if entry is not None else None

    # -- the hot path --------------------------------------------------------------------

    def _add_readers(self) -> None:
        if self._loop is not None and self._raw is not None and self._udp is not None:
            self._loop.add_reader(self._raw.fileno(), self._on_readable)
            self._loop.add_reader(self._udp.fileno(), self._on_readable)

    def _remove_readers(self) -> None:
        if self._loop is not None:
            for sock in (self._raw, self._udp):
                if sock is not None:
                    self._loop.remove_reader(sock.fileno())

    def _on_readable(self) -> None:
        """A datagram woke the loop: drain both sockets, then poll them while busy."""
        self._drain_all()
        if self._poll_interval and self._loop is not None and not self._polling:
            self._remove_readers()
            self._polling = True
            self._tick = self._loop.call_later(self._poll_interval, self._poll)

    def _poll(self) -> None:
        """Polling: drain both sockets and look for the commit in flight. Back to waking on
        readiness once a poll finds nothing to do; never while a commit is in flight, whose
        completion the poll notices (the store's thread then wakes nobody)."""
        self._tick, got = None, 0
        try:
            got = self._drain_all() if self._reading else 0
            self.commits.check()
        finally:  # whatever happened, the sockets are read again: by the next poll, or woken
            self._after_poll(got)

    def _after_poll(self, got: int) -> None:
        if self._loop is None or self._raw is None:
            self._polling = False
        elif got or self.commits.in_flight is not None:
            self._tick = self._loop.call_later(self._poll_interval, self._poll)
        else:
            self._polling = False  # (before add_reader: a commit started later is told)
            if self._reading:
                self._add_readers()

    def _drain_all(self) -> int:
        got = 0
        if self._udp is not None:
            got += self._drain(self._from_relay, self._udp.recvfrom, "relay agents")
        if self._raw is not None:
            got += self._drain(self._from_link, self._raw.recv, "the link")
        return got

    @staticmethod
    def _from_link(recv: Callable[[int], Any]) -> _Datagram | None:
        # recv, not recvfrom: on a packet socket CPython builds recvfrom's address with an
        # ioctl(SIOCGIFNAME) for the interface name, a second syscall per frame. Nothing in it
        # is needed: the frame has the source MAC, and a socket bound to one protocol (not
        # ETH_P_ALL) is never handed the frames this host sends.
        parsed = parse_frame(recv(2048))
        if parsed is None:
            return None
        src_mac, src_ip, _sport, payload = parsed  # never port 67: the filter leaves relays
        return payload, _DIRECT, (src_mac, src_ip)  # to the UDP socket

    @staticmethod
    def _from_relay(recvfrom: Callable[[int], Any]) -> _Datagram:
        payload, (src_ip, _port) = recvfrom(2048)
        return payload, _RELAYED, src_ip

    def _drain(
        self,
        receive: Callable[[Callable[[int], Any]], _Datagram | None],
        recv: Callable[[int], Any],
        where: str,
    ) -> int:
        """Read and answer up to ``_BATCH`` datagrams; how many were read."""
        core, now = self.core, self._clock()
        leases = core.leases
        holding = self._store is not None
        held: list[Held] = []
        got = 0
        for _ in range(_BATCH):
            try:
                datagram = receive(recv)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("DHCP: receive from %s on %s failed: %s", where, self.interface, exc)
                break
            got += 1
            if datagram is None:
                continue
            self.received += 1
            payload, info, source = datagram
            try:
                outcome = core.handle(payload, info, now)
            except PacketError as exc:
                self._drop(source, exc)
                continue
            except Exception:
                # A bug of ours must not take the PXE network down: drop, log, go on.
                self._dropped += 1
                log.exception("DHCP: internal error on a packet from %s", _sender(source))
                continue
            if outcome.warning:  # rare (a DECLINE): an operator must hear of it
                log.warning("DHCP: %s", outcome.warning)
            reply = outcome.reply
            if reply is not None and outcome.destination is not None:
                # An answer about an address with a change not yet committed (the ACK of a
                # binding just made, above all) waits for the commit; yiaddr is bytes 16-19.
                if (
                    holding
                    and leases.unsettled
                    and leases.is_unsettled(_U32.unpack_from(reply, 16)[0])
                ):
                    held.append((outcome.destination, reply, outcome.events))
                    continue
                self._send(outcome.destination, reply)
            if outcome.events:
                self._tell(outcome.events)
        self.commits.after_drain(held)  # (without a store: changes settled in memory)
        return got

    def _release(self, replies: list[Held], failed: bool) -> None:
        """Send replies held for a commit, and publish their exchanges' events as they go; of
        a failed commit, only the requests' events (the replies never leave)."""
        for dest, reply, events in replies:
            if failed:
                self._tell([e for e in events if _inbound(e)])
                continue
            self._send(dest, reply)
            if events:
                self._tell(events)

    def _tell(self, events: list[Event]) -> None:
        for event in events:
            try:
                self._publish(event)
            except Exception:
                log.exception("DHCP: event subscriber failed")

    def _send(self, dest: Destination, reply: bytes) -> None:
        raw, udp = self._raw, self._udp
        if raw is None or udp is None:
            return
        try:
            if dest.mac is None:
                udp.sendto(reply, (dest.ip, dest.port))
            else:
                frame = build_frame(
                    self._mac,
                    dest.mac,
                    self._server_ip,
                    socket.inet_aton(dest.ip),
                    (SERVER_PORT, dest.port),
                    reply,
                )
                raw.send(frame)
            self.sent += 1
        except (BlockingIOError, InterruptedError):
            self._dropped += 1  # send queue full: the client retransmits (RFC 2131 §4.1)
        except OSError as exc:
            self._dropped += 1
            self.log_budget.note(
                dest.ip, "send-failed", "DHCP: sending to %s:%d failed: %s", dest.ip, dest.port,
                exc,
            )  # fmt: skip

    def _drop(self, source: tuple[bytes, bytes] | str, exc: PacketError) -> None:
        self._dropped += 1
        sender = _sender(source)
        self.log_budget.note(
            sender, "malformed", "DHCP: dropped a malformed packet from %s: %s", sender, exc
        )

    def _close_sockets(self) -> None:
        for sock in (self._raw, self._udp):
            if sock is not None:
                sock.close()
        self._raw = self._udp = None


# A datagram read: payload, how it came, who sent it ((MAC, IP) on the link; a relay's IP).
_Datagram = tuple[bytes, ReceiveInfo, tuple[bytes, bytes] | str]


def _inbound(event: Event) -> bool:
    return getattr(event, "direction", "in") != "out"


def _sender(source: tuple[bytes, bytes] | str) -> str:
    """For the log, formatted only when something is logged."""
    if isinstance(source, str):
        return f"relay agent {source}"
    src_mac, src_ip = source
    return f"{src_mac.hex(':')} ({socket.inet_ntoa(src_ip)})"
