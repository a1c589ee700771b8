"""The TFTP server: a thin asyncio shell around ``admit`` and ``Transfer`` (layer 3).

One non-blocking socket listens on port 69 of the PXE address. Each accepted read request gets
its own ephemeral port, the transfer ID of RFC 1350 section 4 (``session.Session``: a socket
connected to the client plus a guard socket for strangers), watched with ``loop.add_reader``: no
threads, and no asyncio transport in between, because a lock-step transfer is bounded by how
fast one ACK turns into the next DATA.

Nothing a client sends can stop the server: a malformed request is logged and dropped, a refused
one (write request, unknown mode, boot policy says no, a name that leaves the root: the decision
is ``admission.admit``'s) is answered with a TFTP error from a fresh port and logged, and a
datagram from a stranger on a transfer's port gets error 5 without disturbing that transfer
(RFC 1350 section 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable

from racker.errors import EnvironmentProblem, PacketError
from racker.events import Publish, TftpEvent
from racker.logbudget import LogBudget
from racker.tftp.admission import BUSY, Accept, Load, Refuse, admit
from racker.tftp.files import FileRoots
from racker.tftp.packets import Request, decode, encode_error
from racker.tftp.session import Address, Session
from racker.tftp.settings import TftpSettings, capacity_for
from racker.tftp.shared import SharedPort, SharedSession

log = logging.getLogger("racker.tftp")


def _allow_all(_ip: str) -> bool:
    return True


def _no_mac(_ip: str) -> str | None:
    return None


class TftpServer:
    """Serves files read-only from ``settings.roots`` (searched in order) on ``host:port``.

    ``settings``: ``tftp_settings(config.tftp, mtu)``; ``policy(ip)``: may this client fetch
    boot files; ``mac_for(ip)``: the MAC the events name; ``known(ip)``: one of the rack's
    machines, which a flood of strangers' requests must not crowd out.
    """

    def __init__(
        self,
        host: str,
        settings: TftpSettings,
        publish: Publish,
        *,
        policy: Callable[[str], bool] = _allow_all,
        mac_for: Callable[[str], str | None] = _no_mac,
        known: Callable[[str], bool] = _allow_all,
        port: int = 69,
    ) -> None:
        self.host = host
        self.port = port  # the bound port once started (useful with port=0)
        self.files = FileRoots(settings.roots, settings.case_insensitive, settings.packaged)
        self.limits = settings.limits
        self.publish = publish
        self.policy = policy
        self.mac_for = mac_for
        self.known = known  # is this IP one of the rack's machines (not capped as a stranger)
        self.transfers: dict[Address, Session | SharedSession] = {}
        self.single_port = settings.single_port
        self.shared: SharedPort | None = None  # the port all transfers use, when single_port
        self.capacity = settings.capacity
        self._per_client: Counter[str] = Counter()  # running transfers per client IP
        self.busy_refusals = 0  # requests refused because the server was full (a metric)
        self.dropped = 0  # malformed or unexpected datagrams on port 69 (a metric)
        # Bad input is logged within a budget per client and kind (a flood stays a few lines).
        self.log_budget = LogBudget(log)
        self._budget_timer: asyncio.TimerHandle | None = None
        self._busy_logged: dict[str, tuple[float, int]] = {}  # IP -> (last line, left out)
        self.gso = True  # cleared the first time the kernel or the device refuses UDP GSO
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            # No SO_REUSEADDR: for UDP it would let a second server (another racker, dnsmasq)
            # bind the same port silently and take the requests.
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise EnvironmentProblem(
                f"TFTP: cannot listen on {self.host}:{self.port}: {exc.strerror}",
                "is another TFTP server (dnsmasq, tftpd-hpa) running, and is the address up?",
            ) from None
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.capacity = capacity_for(resource.getrlimit(resource.RLIMIT_NOFILE)[0], self.capacity)
        if self.single_port:
            try:
                self.shared = SharedPort(self, self._loop)
            except OSError as exc:
                sock.close()
                raise EnvironmentProblem(
                    f"TFTP: cannot open the transfers' port on {self.host}: {exc.strerror}",
                    "is the address up?",
                ) from None
        self._sock = sock
        self._loop.add_reader(sock.fileno(), self._on_listener_readable)
        self._budget_timer = self._loop.call_later(self.log_budget.period, self._flush_budget)
        log.info(
            "TFTP listening on %s:%d (roots: %s; at most %d transfers at once, %d per client; %s)",
            self.host,
            self.port,
            self.files.roots,
            self.capacity.total,
            self.capacity.per_client,
            f"transfers on port {self.shared.port}" if self.shared else "a port per transfer",
        )

    def _flush_budget(self) -> None:
        self.log_budget.flush()
        if self._loop is not None and self._sock is not None:
            self._budget_timer = self._loop.call_later(self.log_budget.period, self._flush_budget)

    async def close(self) -> None:
        if self._budget_timer is not None:
            self._budget_timer.cancel()
        self.log_budget.flush()
        if self._sock is not None and self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        for session in list(self.transfers.values()):
            session.transfer.abort("server shut down")
            session.finish()
        if self.shared is not None:
            self.shared.close()
            self.shared = None

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
            self.dropped += 1
            self.log_budget.note(
                addr[0], "malformed", "TFTP: dropped a malformed packet from %s:%d: %s", *addr,
                exc.message,
            )  # fmt: skip
            return
        if not isinstance(packet, Request):
            self.dropped += 1
            self.log_budget.note(
                addr[0], "unexpected", "TFTP: dropped a %s sent to port %d by %s:%d",
                type(packet).__name__, self.port, *addr,
            )  # fmt: skip
            return
        if addr in self.transfers:
            return  # the client retransmitted its request; the transfer already answers it
        load = Load(
            len(self.transfers),
            self._per_client[addr[0]],
            self.capacity.total,
            self.capacity.per_client,
            stranger=not self._is_known(addr[0]),
            cap_strangers=self.capacity.strangers,
        )
        decision = admit(packet, addr[0], self.limits, self._may_fetch, self.files.open, load)
        if isinstance(decision, Refuse):
            if decision.message == BUSY:
                self._busy(addr, packet, decision)
            else:
                self._refuse(addr, packet, decision)
        else:
            self._begin(addr, packet, decision)

    def ended(self, addr: Address) -> None:
        """A transfer's session is over (``Session.finish``)."""
        if self.transfers.pop(addr, None) is not None:
            left = self._per_client[addr[0]] - 1
            if left > 0:
                self._per_client[addr[0]] = left
            else:
                del self._per_client[addr[0]]

    def _is_known(self, ip: str) -> bool:
        try:
            return self.known(ip)
        except Exception:
            log.exception("TFTP: known(%s) failed; treating it as a stranger", ip)
            return False

    def _may_fetch(self, ip: str) -> bool:
        try:
            return self.policy(ip)
        except Exception:
            log.exception("TFTP: boot policy failed for %s; refusing", ip)
            return False

    def _begin(self, addr: Address, request: Request, accepted: Accept) -> None:
        if self._loop is None:
            accepted.opened.close()
            return
        session: Session | SharedSession
        try:
            if self.shared is not None:
                session = SharedSession(self, self.shared, addr, request, accepted)
            else:
                session = Session(self, self._loop, addr, request, accepted)
        except OSError as exc:
            accepted.opened.close()
            log.error("TFTP: cannot open a transfer socket for %s:%d: %s", *addr, exc)
            return
        self.transfers[addr] = session
        self._per_client[addr[0]] += 1
        session.begin()

    # A full server's refusals cost no descriptor (they go out from port 69: the client will
    # ask again anyway) and at most one log line per client per BUSY_LOG_INTERVAL, which says
    # how many were left out; every one is counted (``busy_refusals``) and published.
    BUSY_LOG_INTERVAL = 60.0

    def _busy(self, addr: Address, request: Request, refused: Refuse) -> None:
        self.busy_refusals += 1
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.sendto(encode_error(refused.code, refused.message), addr)
        now = time.monotonic()
        last, left_out = self._busy_logged.get(addr[0], (now - self.BUSY_LOG_INTERVAL, 0))
        if now - last >= self.BUSY_LOG_INTERVAL:
            more = f" ({left_out} more refused since the last line)" if left_out else ""
            log.warning(
                "TFTP: refused %r to %s:%d: %s%s", request.filename, *addr, refused.reason, more
            )
            if len(self._busy_logged) >= 4096:  # bounded under a flood from many addresses
                self._busy_logged.clear()
            self._busy_logged[addr[0]] = (now, 0)
        else:
            self._busy_logged[addr[0]] = (last, left_out + 1)
        self.event("transfer-failed", addr, request.filename, error=refused.reason)

    def _refuse(self, addr: Address, request: Request, refused: Refuse) -> None:
        self.log_budget.note(
            addr[0], "refused", "TFTP: refused %r to %s:%d: %s", request.filename, *addr,
            refused.reason,
        )  # fmt: skip
        # From a fresh port, as the transfer would have come (RFC 1350 section 4).
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind((self.host, 0))
            sock.sendto(encode_error(refused.code, refused.message), addr)
        self.event("transfer-failed", addr, request.filename, error=refused.reason)

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
