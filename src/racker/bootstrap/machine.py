"""One node's provisioning, as a pure state table (layer 1: no I/O, time passed in).

Theory of operation
-------------------
A node walks ``pending → bmc-ok → pxe-armed → power-cycled → dhcp-seen → loader-fetched →
script-fetched → kernel-fetched → ignition-fetched → installing → installed → disk-set →
rebooted → ready``. Two kinds of *signals* move it:

- **results** of what the orchestrator asked the BMC to do (``bmc-ok``, ``pxe-armed``,
  ``power-cycled``, ``disk-set``, ``bmc-failed``). A result that does not fit the current phase
  is our own bug and raises ``IllegalTransition`` without changing anything (as h11 does).
- **observations** of what the node did, classified from the boot stack's events (DHCP, TFTP,
  HTTP, phone-home). The network is not ordered and a node may skip steps (an iPXE NIC ROM needs
  no TFTP loader; UEFI HTTP boot no TFTP at all), so an observation moves the node *forward* to
  the phase it proves and is ignored when it proves nothing new (a duplicate DHCP, a late event
  of an earlier attempt).

``TRANSITIONS`` is the one table; everything else here reads it. Each phase has a deadline
(``Deadlines``); when it passes, the node fails with a reason, and ``after_failure`` decides
whether another attempt follows (with back-off) or the operator's ``--on-failure`` policy takes
over. A node that never asked for DHCP after a PXE power cycle is retried with a *persistent*
PXE boot device, because some firmware ignores one-time overrides.

From ``installed`` on, the boot stack answers the node with "boot from disk" (``boot_action``),
so a node that PXE boots after its install is never re-imaged unless reprovisioning is asked.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from racker.errors import RackerError
from racker.events import DhcpEvent, Event, HttpEvent, PhoneHomeEvent, TftpEvent
from racker.model import BootAction


class Phase(enum.StrEnum):
    PENDING = "pending"
    BMC_OK = "bmc-ok"
    PXE_ARMED = "pxe-armed"
    POWER_CYCLED = "power-cycled"
    DHCP_SEEN = "dhcp-seen"
    LOADER_FETCHED = "loader-fetched"
    SCRIPT_FETCHED = "script-fetched"
    KERNEL_FETCHED = "kernel-fetched"
    IGNITION_FETCHED = "ignition-fetched"
    INSTALLING = "installing"
    INSTALLED = "installed"
    DISK_SET = "disk-set"
    REBOOTED = "rebooted"
    READY = "ready"
    FAILED = "failed"


class Signal(enum.StrEnum):
    # results of BMC actions
    BMC_OK = "bmc-ok"
    PXE_ARMED = "pxe-armed"
    POWER_CYCLED = "power-cycled"
    DISK_SET = "disk-set"
    BMC_FAILED = "bmc-failed"
    # observations from the boot stack
    DHCP_PXE = "dhcp-pxe"  # DHCP from firmware or iPXE
    DHCP_OS = "dhcp-os"  # DHCP from an operating system (no PXE options)
    LEASED_OS = "leased-os"  # racker ACKed an operating system: the node is up
    LOADER = "loader"  # a TFTP transfer finished
    SCRIPT = "script"  # /boot.ipxe or /ipxe served
    KERNEL = "kernel"  # an asset (kernel, initrd) served
    IGNITION = "ignition"
    INSTALL_STARTED = "install-started"
    INSTALLED = "installed"
    INSTALL_FAILED = "install-failed"
    # the orchestrator's own
    TIMEOUT = "timeout"
    RETRY = "retry"
    REPROVISION = "reprovision"


RESULTS = frozenset(
    {Signal.BMC_OK, Signal.PXE_ARMED, Signal.POWER_CYCLED, Signal.DISK_SET, Signal.BMC_FAILED}
)

P = Phase
S = Signal
_BOOTING = (P.POWER_CYCLED, P.DHCP_SEEN, P.LOADER_FETCHED, P.SCRIPT_FETCHED, P.KERNEL_FETCHED)
_INSTALLING = (*_BOOTING, P.IGNITION_FETCHED, P.INSTALLING)
_ACTIVE = tuple(p for p in Phase if p not in (P.READY, P.FAILED))

# (phases the signal is accepted in, signal, phase it leads to). The one table.
_ROWS: list[tuple[tuple[Phase, ...], Signal, Phase]] = [
    ((P.PENDING,), S.BMC_OK, P.BMC_OK),
    ((P.BMC_OK,), S.PXE_ARMED, P.PXE_ARMED),
    ((P.PXE_ARMED,), S.POWER_CYCLED, P.POWER_CYCLED),
    ((P.POWER_CYCLED,), S.DHCP_PXE, P.DHCP_SEEN),
    ((P.POWER_CYCLED, P.DHCP_SEEN), S.LOADER, P.LOADER_FETCHED),
    (_BOOTING[:3], S.SCRIPT, P.SCRIPT_FETCHED),
    (_BOOTING[:4], S.KERNEL, P.KERNEL_FETCHED),
    (_BOOTING, S.IGNITION, P.IGNITION_FETCHED),
    ((*_BOOTING, P.IGNITION_FETCHED), S.INSTALL_STARTED, P.INSTALLING),
    (_INSTALLING, S.INSTALLED, P.INSTALLED),
    ((P.INSTALLED,), S.DISK_SET, P.DISK_SET),
    ((P.DISK_SET,), S.DHCP_PXE, P.REBOOTED),
    ((P.DISK_SET,), S.DHCP_OS, P.REBOOTED),
    ((P.DISK_SET, P.REBOOTED), S.LEASED_OS, P.READY),
    (_INSTALLING, S.INSTALL_FAILED, P.FAILED),
    ((P.PENDING, P.BMC_OK, P.PXE_ARMED, P.INSTALLED), S.BMC_FAILED, P.FAILED),
    (_ACTIVE, S.TIMEOUT, P.FAILED),
    ((P.FAILED,), S.RETRY, P.PENDING),
    ((P.READY, P.FAILED), S.REPROVISION, P.PENDING),
]
TRANSITIONS: dict[tuple[Phase, Signal], Phase] = {
    (src, signal): dst for sources, signal, dst in _ROWS for src in sources
}

# Phases in which the boot stack must not offer an installer to the node.
DISK_PHASES = frozenset({P.INSTALLED, P.DISK_SET, P.REBOOTED, P.READY})


class IllegalTransition(RackerError):
    """The orchestrator fed a result that does not fit the node's phase: racker's own bug."""


@dataclass(frozen=True)
class Deadlines:
    """Seconds a node may stay in each phase before it fails (defaults suit real servers)."""

    seconds: Mapping[Phase, float] = field(
        default_factory=lambda: {
            P.PENDING: 60,  # BMC answers power status
            P.BMC_OK: 60,
            P.PXE_ARMED: 60,
            P.POWER_CYCLED: 180,  # POST of a big server, then the first DHCP
            # UEFI firmware sent to HTTP boot (boot.uefi_http) first runs out its PXEv4 and
            # PXEv6 attempts (~60 s each in OVMF) before it fetches the loader over HTTP.
            P.DHCP_SEEN: 300,
            P.LOADER_FETCHED: 120,
            P.SCRIPT_FETCHED: 300,  # kernel + initrd download
            P.KERNEL_FETCHED: 300,  # boot to Ignition
            P.IGNITION_FETCHED: 300,
            P.INSTALLING: 1800,
            P.INSTALLED: 120,  # set the boot device to disk
            P.DISK_SET: 900,  # reboot, POST, OS DHCP
            P.REBOOTED: 600,
        }
    )

    def of(self, phase: Phase) -> float | None:
        return self.seconds.get(phase)

    def scaled(self, factor: float) -> Deadlines:
        return Deadlines({p: s * factor for p, s in self.seconds.items()})


@dataclass(frozen=True)
class NodeRecord:
    """A node's provisioning state, as stored in ``node_state`` (``data`` holds the rest)."""

    mac: str
    phase: Phase
    since: float  # when the phase was entered (wall clock)
    attempt: int = 1
    reason: str = ""  # why it failed (or why the last attempt failed)
    deadline: float | None = None  # when the phase times out
    not_before: float = 0.0  # back-off: do not act before this time
    persistent_pxe: bool = False  # arm PXE as a persistent boot device
    failed_in: str = ""  # the phase the node failed in
    role: str = ""  # the plan's role for the node (racker status shows it)

    def to_data(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "deadline": self.deadline,
            "not_before": self.not_before,
            "persistent_pxe": self.persistent_pxe,
            "failed_in": self.failed_in,
        }

    @classmethod
    def from_stored(
        cls, mac: str, state: str, since: float, attempt: int, reason: str, data: Mapping[str, Any]
    ) -> NodeRecord:
        try:
            phase = Phase(state)
        except ValueError:
            phase = P.PENDING  # a state this racker does not know: start the node over
        return cls(
            mac,
            phase,
            since,
            max(attempt, 1),
            reason,
            data.get("deadline"),
            float(data.get("not_before") or 0.0),
            bool(data.get("persistent_pxe", False)),
            str(data.get("failed_in", "")),
            str(data.get("role", "")),
        )


def _enter(
    rec: NodeRecord, phase: Phase, now: float, deadlines: Deadlines, **kw: Any
) -> NodeRecord:
    limit = deadlines.of(phase)
    return dataclasses.replace(
        rec, phase=phase, since=now, deadline=None if limit is None else now + limit, **kw
    )


def start(mac: str, now: float, deadlines: Deadlines) -> NodeRecord:
    return _enter(NodeRecord(mac, P.PENDING, now), P.PENDING, now, deadlines)


def advance(
    rec: NodeRecord, signal: Signal, now: float, deadlines: Deadlines, reason: str = ""
) -> NodeRecord | None:
    """The record after ``signal``, or None when the signal changes nothing (observations)."""
    target = TRANSITIONS.get((rec.phase, signal))
    if target is None:
        if signal in RESULTS:
            raise IllegalTransition(f"{rec.mac}: {signal} does not fit phase {rec.phase}")
        return None
    if target is P.FAILED:
        return _enter(rec, target, now, deadlines, reason=reason, failed_in=str(rec.phase))
    if target is P.PENDING:
        return _enter(rec, target, now, deadlines, reason=rec.reason)
    return _enter(rec, target, now, deadlines)


def expired(rec: NodeRecord, now: float) -> bool:
    return rec.deadline is not None and now >= rec.deadline and rec.phase in _ACTIVE


def timeout_reason(rec: NodeRecord, deadlines: Deadlines) -> str:
    limit = deadlines.of(rec.phase) or 0
    what = {
        P.POWER_CYCLED: "no DHCP request from the node (did it PXE boot?)",
        P.INSTALLING: "the installer did not report back",
        P.DISK_SET: "the installed system did not come up",
    }.get(rec.phase, "no progress")
    return f"{what}: stuck in {rec.phase} for {limit:g} s"


Backoff = Callable[[int], float]


def default_backoff(attempt: int) -> float:
    """Seconds to wait before attempt ``attempt + 1``: 5, 10, 20, 40, then 60."""
    return float(min(5 * 2 ** (attempt - 1), 60))


def after_failure(
    rec: NodeRecord,
    now: float,
    retries: int,
    deadlines: Deadlines,
    backoff: Backoff = default_backoff,
    force: bool = False,
) -> NodeRecord | None:
    """The next attempt of a failed node, or None when its ``retries`` are used up.

    ``force`` starts another attempt anyway (``--on-failure retry``, or the operator said so).
    """
    if rec.phase is not P.FAILED:
        raise IllegalTransition(f"{rec.mac}: retry of a node in phase {rec.phase}")
    if rec.attempt > retries and not force:
        return None
    # Firmware that ignored a one-time PXE override gets a persistent one.
    persistent = rec.persistent_pxe or rec.failed_in == P.POWER_CYCLED
    nxt = advance(rec, S.RETRY, now, deadlines)
    assert nxt is not None
    return dataclasses.replace(
        nxt,
        attempt=rec.attempt + 1,
        not_before=now + backoff(rec.attempt),
        persistent_pxe=persistent,
    )


def resume(rec: NodeRecord, now: float, deadlines: Deadlines) -> NodeRecord:
    """A record read back after racker stopped: same phase, a fresh deadline from ``now``.

    The phase's BMC action (if any) is redone; the actions are idempotent.
    """
    limit = deadlines.of(rec.phase)
    return dataclasses.replace(rec, deadline=None if limit is None else now + limit)


class Action(enum.StrEnum):
    """What the orchestrator does for a node in its phase."""

    CHECK_BMC = "check-bmc"
    ARM_PXE = "arm-pxe"
    POWER_CYCLE = "power-cycle"
    SET_DISK = "set-disk"
    WAIT = "wait"  # for an observation or the deadline
    DONE = "done"
    GIVE_UP = "give-up"


_ACTIONS = {
    P.PENDING: Action.CHECK_BMC,
    P.BMC_OK: Action.ARM_PXE,
    P.PXE_ARMED: Action.POWER_CYCLE,
    P.INSTALLED: Action.SET_DISK,
    P.READY: Action.DONE,
    P.FAILED: Action.GIVE_UP,
}


def next_action(rec: NodeRecord) -> Action:
    return _ACTIONS.get(rec.phase, Action.WAIT)


def boot_action(phase: Phase | None) -> BootAction:
    """What the boot stack offers a node in ``phase`` (None: not being provisioned)."""
    return BootAction.DISK if phase in DISK_PHASES else BootAction.PXE


# -- from boot-stack events to signals ---------------------------------------------------------

_FIRMWARE_KINDS = frozenset({"bios", "uefi", "uefi-http", "ipxe"})
_CLIENT_MESSAGES = frozenset({"DISCOVER", "REQUEST"})


def classify(event: Event) -> Signal | None:
    """The signal an event carries about its node (``event.mac``), or None."""
    if isinstance(event, DhcpEvent):
        if event.direction == "in" and event.message in _CLIENT_MESSAGES:
            return S.DHCP_PXE if event.client_kind in _FIRMWARE_KINDS else S.DHCP_OS
        if event.direction == "out" and event.message == "ACK" and event.client_kind == "os":
            return S.LEASED_OS
        return None
    if isinstance(event, TftpEvent):
        return S.LOADER if event.kind == "transfer-finished" and not event.error else None
    if isinstance(event, HttpEvent):
        if not 200 <= event.status < 300 or event.method not in ("GET", "HEAD"):
            return None
        if event.path in ("/boot.ipxe", "/ipxe"):
            return S.SCRIPT
        if event.path == "/ignition":
            return S.IGNITION
        if event.path.startswith("/assets/") and event.method == "GET":
            return S.KERNEL
        return None
    if isinstance(event, PhoneHomeEvent):
        return {
            "install-started": S.INSTALL_STARTED,
            "installed": S.INSTALLED,
            "failed": S.INSTALL_FAILED,
        }.get(event.kind)
    return None
