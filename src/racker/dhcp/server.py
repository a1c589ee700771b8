"""The DHCP server's asyncio transport (layer 3): sockets in, ``DhcpCore`` decides, frames out.

- Receiving: clients on the link through an AF_PACKET socket bound to the PXE interface, with
  a classic BPF filter so the kernel hands over only IPv4/UDP to port 67 from other ports;
  relay agents (which send from port 67, RFC 1542 §5.4) through a UDP socket bound to port 67
  on the interface, whose filter keeps only what comes from port 67. Routed traffic thus
  takes the kernel's ordinary UDP path, as with any DHCP server, instead of a packet-socket
  copy and the UDP stack both. Both are read with ``loop.add_reader`` (no threads), many
  datagrams per wake-up.
- Sending: to a client on the link, a whole Ethernet frame built here (a client without an
  address cannot be reached through the IP stack: RFC 2131 §4.1); to a relay agent, a normal
  UDP datagram from port 67 (the kernel routes and resolves it).
- Persisting (group commit, as ISC dhcpd and Kea commit before they ACK): the lease changes
  decided in the drains of the sockets are handed to the lease store (``LeaseStore``: racker's
  ``StoreWriter``, a thread with its own SQLite connection) in batches, and every reply about
  an address whose change is not committed yet (an ACK, above all) is held until its batch is
  committed; the store's thread completes a future, and its completion comes back to the loop
  through ``loop.call_soon_threadsafe``. A batch starts ``COMMIT_WINDOW`` after its first
  change (the drains of those milliseconds share it), and one is in flight at a time: what is
  decided meanwhile waits, and is committed together, when it returns. Replies about settled
  addresses (OFFERs, NAKs, a cached ACK of a stored lease) go out at once. So an ACKed lease
  is on disk before the client has it, even if racker is killed the next moment.
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
import concurrent.futures
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from racker.dhcp.core import DhcpCore, ReceiveInfo
from racker.dhcp.frames import build_frame, parse_frame
from racker.dhcp.leases import LeaseEntry, LeaseTable, PersistedLease
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
_RELAYED, _DIRECT = ReceiveInfo(relayed=True), ReceiveInfo(relayed=False)  # not one per packet


# A lease as the store's leases table holds it: (dotted address, mac, state, expires,
# client_id, hostname).
LeaseRow = tuple[str, str, str, float, bytes | None, str | None]


class LeaseStore(Protocol):
    """What the server needs of a store (``racker.store_writer.StoreWriter`` off the loop;
    ``racker.store.Store``, committing on the caller's thread, in tests)."""

    def commit_lease_rows(
        self, rows: list[LeaseRow], now: float
    ) -> concurrent.futures.Future[None]: ...

    def leases(self) -> Iterable[PersistedLease]:
        """The leases as stored, after every commit asked for before."""
        ...


# A reply held until a commit: where to, the bytes, and the events of its exchange (published
# when the reply is sent, not when it was decided).
_Held = tuple[Destination, bytes, list[Event]]


@dataclass(eq=False)
class _Commit:
    """One batch of lease changes in the store's hands, and the replies waiting for it."""

    table: LeaseTable  # the core's table when taken (a reload may swap the core meanwhile)
    changes: list[LeaseEntry]
    replies: list[_Held]
    future: concurrent.futures.Future[None]
    finished: bool = False


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
    ) -> None:
        self.interface = interface
        self.core = core
        self._store = lease_store
        self._publish = publish
        self._clock = clock
        self._commit: _Commit | None = None  # the batch in flight
        self._window = commit_window
        self._gathering: asyncio.TimerHandle | None = None  # a commit starting at the window's end
        self._waiting: list[_Held] = []  # replies for the next commit
        self._idle: list[asyncio.Future[None]] = []  # close(): woken when nothing is unsettled
        self._server_ip = core.settings.server.packed
        self._raw: socket.socket | None = None
        self._udp: socket.socket | None = None
        self._mac = b""
        self._loop: asyncio.AbstractEventLoop | None = None
        # Bad input is logged within a budget per source and kind: a flood stays a few lines.
        self.log_budget = LogBudget(log)
        self._budget_timer: asyncio.TimerHandle | None = None
        self.received = 0
        self.sent = 0
        self.dropped = 0

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
        self._loop.add_reader(self._raw.fileno(), self._on_readable)
        self._loop.add_reader(self._udp.fileno(), self._on_relay_readable)
        self._budget_timer = self._loop.call_later(self.log_budget.period, self._flush_budget)
        log.info("DHCP serving on %s as %s", self.interface, self.core.settings.server)

    async def close(self) -> None:
        """Stop reading, commit every pending lease change and send the replies held for it
        (no ACKed lease is lost, no committed ACK unsent), then close the sockets."""
        if self._loop is not None:
            for sock in (self._raw, self._udp):
                if sock is not None:
                    self._loop.remove_reader(sock.fileno())
            if self._busy():
                idle = self._loop.create_future()
                self._idle.append(idle)
                if self._commit is None:
                    self._start_commit()
                if not idle.done():
                    await idle
        else:
            self.flush()
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
        caller until the store has committed (SIGHUP's reload, and a server never started)."""
        while True:
            commit = self._commit
            if commit is not None:
                concurrent.futures.wait([commit.future])
                if not self._finish(commit):
                    return  # logged: the changes stay in memory, pending
            elif self._busy():
                self._start_commit()
            else:
                return

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

    def _on_readable(self) -> None:
        if self._raw is not None:
            self._drain(self._from_link, self._raw.recv, "the link")

    def _on_relay_readable(self) -> None:
        if self._udp is not None:
            self._drain(self._from_relay, self._udp.recvfrom, "relay agents")

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
    ) -> None:
        core, now = self.core, self._clock()
        leases = core.leases
        holding = self._store is not None
        held: list[_Held] = []
        for _ in range(_BATCH):
            try:
                datagram = receive(recv)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                log.warning("DHCP: receive from %s on %s failed: %s", where, self.interface, exc)
                break
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
                self.dropped += 1
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
        if held:
            self._waiting.extend(held)
        if (
            self._commit is None
            and self._gathering is None
            and (self.core.leases.pending or self._waiting)
        ):
            if self._window and self._loop is not None:
                self._gathering = self._loop.call_later(self._window, self._start_commit)
            else:
                self._start_commit()

    # -- group commit ----------------------------------------------------------------------

    def _busy(self) -> bool:
        return self._commit is not None or bool(self.core.leases.pending or self._waiting)

    def _start_commit(self) -> None:
        """Hand the pending lease changes to the store as one batch, with the replies held for
        them; without changes, the replies held go out (what they waited for is committed)."""
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        if self._commit is not None:  # the window ended during a commit: it starts the next
            return
        table, store = self.core.leases, self._store
        changes = table.take_changes()
        replies, self._waiting = self._waiting, []
        if store is None:
            table.settle(changes)  # kept in memory only
        if store is None or not changes:
            self._release(replies)
            self._wake_idle()
            return
        rows = [_lease_row(c) for c in changes]
        try:
            future = store.commit_lease_rows(rows, self._clock())
        except Exception as exc:  # a store that fails to take the batch fails the batch
            future = concurrent.futures.Future()
            future.set_exception(exc)
        commit = self._commit = _Commit(table, changes, replies, future)
        if future.done():  # a store committing on this thread (tests): no loop needed
            self._finish(commit)
            return
        loop = self._loop or asyncio.get_running_loop()

        def committed(_: concurrent.futures.Future[None]) -> None:  # on the store's thread
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody left to answer
                loop.call_soon_threadsafe(self._finish, commit)

        future.add_done_callback(committed)

    def _finish(self, commit: _Commit) -> bool:
        """A commit returned (on the loop): send its replies, or, if it failed, keep its
        changes pending (its replies are dropped: the clients ask again). Then commit what was
        decided meanwhile. True if it was committed."""
        if commit.finished:
            return commit.future.exception() is None
        commit.finished = True
        if self._commit is commit:
            self._commit = None
        error = commit.future.exception()
        commit.table.settle(commit.changes, committed=error is None)
        if error is not None:
            self.dropped += len(commit.replies)
            log.error(
                "DHCP: committing %d lease changes failed (%s); %d replies withheld, the"
                " changes stay in memory and are tried again",
                len(commit.changes),
                error,
                len(commit.replies),
            )
            # The requests were received; the replies never leave, so neither do their events.
            self._tell([e for *_, evs in commit.replies for e in evs if _inbound(e)])
            self._wake_idle(failed=True)
            return False
        self._release(commit.replies)
        if self.core.leases.pending or self._waiting:
            self._start_commit()
        else:
            self._wake_idle()
        return True

    def _wake_idle(self, failed: bool = False) -> None:
        if self._commit is not None or (not failed and self._busy()):
            return
        idle, self._idle = self._idle, []
        for waiter in idle:
            if not waiter.done():
                waiter.set_result(None)

    def _release(self, replies: list[_Held]) -> None:
        """Send replies held for a commit, and publish their exchanges' events as they go."""
        for dest, reply, events in replies:
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
            self.dropped += 1  # send queue full: the client retransmits (RFC 2131 §4.1)
        except OSError as exc:
            self.dropped += 1
            self.log_budget.note(
                dest.ip, "send-failed", "DHCP: sending to %s:%d failed: %s", dest.ip, dest.port,
                exc,
            )  # fmt: skip

    def _drop(self, source: tuple[bytes, bytes] | str, exc: PacketError) -> None:
        self.dropped += 1
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


def _lease_row(entry: LeaseEntry) -> LeaseRow:
    dotted = socket.inet_ntoa(entry.address.to_bytes(4, "big"))
    return (dotted, entry.mac, entry.state.value, entry.expires, entry.client_id, entry.hostname)
