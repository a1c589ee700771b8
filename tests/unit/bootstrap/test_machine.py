"""The provisioning state table: transitions, deadlines, retries and event classification."""

from __future__ import annotations

import dataclasses

import pytest

from racker.bootstrap.machine import (
    TRANSITIONS,
    Action,
    Deadlines,
    IllegalTransition,
    NodeRecord,
    Phase,
    Signal,
    advance,
    after_failure,
    boot_action,
    classify,
    expired,
    next_action,
    resume,
    start,
)
from racker.events import BmcEvent, DhcpEvent, HttpEvent, PhoneHomeEvent, TftpEvent
from racker.model import BootAction

P, S = Phase, Signal
MAC = "52:54:00:00:00:01"
D = Deadlines()


def rec(phase: Phase, **kw: object) -> NodeRecord:
    return dataclasses.replace(start(MAC, 0.0, D), phase=phase, **kw)  # type: ignore[arg-type]


# (phase, signal, expected phase or None when ignored)
CASES = [
    (P.PENDING, S.BMC_OK, P.BMC_OK),
    (P.BMC_OK, S.PXE_ARMED, P.PXE_ARMED),
    (P.PXE_ARMED, S.POWER_CYCLED, P.POWER_CYCLED),
    (P.POWER_CYCLED, S.DHCP_PXE, P.DHCP_SEEN),
    (P.DHCP_SEEN, S.DHCP_PXE, None),  # iPXE's second DHCP proves nothing new
    (P.DHCP_SEEN, S.LOADER, P.LOADER_FETCHED),
    (P.LOADER_FETCHED, S.SCRIPT, P.SCRIPT_FETCHED),
    (P.DHCP_SEEN, S.SCRIPT, P.SCRIPT_FETCHED),  # an iPXE NIC ROM needs no TFTP loader
    (P.SCRIPT_FETCHED, S.SCRIPT, None),  # /boot.ipxe then /ipxe
    (P.SCRIPT_FETCHED, S.KERNEL, P.KERNEL_FETCHED),
    (P.KERNEL_FETCHED, S.KERNEL, None),  # the initrd after the kernel
    (P.KERNEL_FETCHED, S.IGNITION, P.IGNITION_FETCHED),
    (P.IGNITION_FETCHED, S.INSTALL_STARTED, P.INSTALLING),
    (P.INSTALLING, S.INSTALLED, P.INSTALLED),
    (P.IGNITION_FETCHED, S.INSTALLED, P.INSTALLED),  # install-started was lost
    (P.INSTALLED, S.DISK_SET, P.DISK_SET),
    (P.INSTALLED, S.DHCP_OS, None),  # wait for the disk boot device first
    (P.DISK_SET, S.DHCP_PXE, P.REBOOTED),  # firmware PXE first: racker says "boot disk"
    (P.DISK_SET, S.DHCP_OS, P.REBOOTED),
    (P.REBOOTED, S.LEASED_OS, P.READY),
    (P.DISK_SET, S.LEASED_OS, P.READY),
    (P.READY, S.DHCP_PXE, None),  # an installed node PXE booting is not re-imaged
    (P.READY, S.SCRIPT, None),
    (P.INSTALLING, S.INSTALL_FAILED, P.FAILED),
    (P.KERNEL_FETCHED, S.INSTALL_FAILED, P.FAILED),
    (P.READY, S.INSTALL_FAILED, None),  # a stale report from an old run
    (P.PENDING, S.BMC_FAILED, P.FAILED),
    (P.INSTALLED, S.BMC_FAILED, P.FAILED),
    (P.POWER_CYCLED, S.TIMEOUT, P.FAILED),
    (P.READY, S.TIMEOUT, None),
    (P.FAILED, S.RETRY, P.PENDING),
    (P.READY, S.REPROVISION, P.PENDING),
    (P.PENDING, S.DHCP_PXE, None),  # a node booting before racker power cycled it
    (P.POWER_CYCLED, S.LEASED_OS, None),  # the old OS still running: not proof of anything
]


@pytest.mark.parametrize(("phase", "signal", "expected"), CASES)
def test_transitions(phase: Phase, signal: Signal, expected: Phase | None) -> None:
    before = rec(phase)
    after = advance(before, signal, 100.0, D, reason="why")
    if expected is None:
        assert after is None
    else:
        assert after is not None
        assert after.phase is expected
        assert after.since == 100.0
        if expected is P.FAILED:
            assert after.reason == "why"
            assert after.failed_in == phase


@pytest.mark.parametrize(
    ("phase", "signal"),
    [(P.PENDING, S.PXE_ARMED), (P.READY, S.DISK_SET), (P.POWER_CYCLED, S.BMC_OK)],
)
def test_a_result_out_of_place_is_our_bug(phase: Phase, signal: Signal) -> None:
    before = rec(phase)
    with pytest.raises(IllegalTransition):
        advance(before, signal, 1.0, D)
    assert before.phase is phase  # frozen: nothing changed


def test_every_phase_is_reachable_and_every_active_phase_can_fail() -> None:
    assert all(src is not dst for (src, _), dst in TRANSITIONS.items())  # no silent resets
    reached = {P.PENDING} | set(TRANSITIONS.values())
    assert reached == set(Phase)
    for phase in Phase:
        if phase not in (P.READY, P.FAILED):
            assert TRANSITIONS[(phase, S.TIMEOUT)] is P.FAILED


def test_deadlines() -> None:
    d = Deadlines({P.PENDING: 10, P.POWER_CYCLED: 50})
    r = start(MAC, 1000.0, d)
    assert r.deadline == 1010.0
    assert not expired(r, 1009.9)
    assert expired(r, 1010.0)
    r2 = advance(r, S.BMC_OK, 1005.0, d)
    assert r2 is not None
    assert r2.deadline is None  # no limit configured for bmc-ok
    assert not expired(r2, 1e9)
    assert Deadlines().scaled(0.01).of(P.PENDING) == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("failed_in", "attempt", "retries", "expect_attempt", "expect_persistent"),
    [
        (P.POWER_CYCLED, 1, 2, 2, True),  # no DHCP: persistent PXE next time
        (P.INSTALLING, 1, 2, 2, False),
        (P.INSTALLING, 2, 2, 3, False),
        (P.INSTALLING, 3, 2, None, False),  # retries used up
        (P.INSTALLING, 1, 0, None, False),
    ],
)
def test_after_failure(
    failed_in: Phase,
    attempt: int,
    retries: int,
    expect_attempt: int | None,
    expect_persistent: bool,
) -> None:
    failed = advance(rec(failed_in, attempt=attempt), S.TIMEOUT, 50.0, D)
    assert failed is not None
    nxt = after_failure(failed, 60.0, retries, D, backoff=lambda a: 10.0 * a)
    if expect_attempt is None:
        assert nxt is None
        forced = after_failure(failed, 60.0, retries, D, force=True)
        assert forced is not None
        assert forced.attempt == attempt + 1
        return
    assert nxt is not None
    assert nxt.phase is P.PENDING
    assert nxt.attempt == expect_attempt
    assert nxt.persistent_pxe is expect_persistent
    assert nxt.not_before == 60.0 + 10.0 * attempt
    assert next_action(nxt) is Action.CHECK_BMC


def test_store_round_trip_and_resume() -> None:
    r = dataclasses.replace(start(MAC, 5.0, D), persistent_pxe=True, not_before=9.0, attempt=2)
    back = NodeRecord.from_stored(r.mac, str(r.phase), r.since, r.attempt, r.reason, r.to_data())
    assert back == r
    unknown = NodeRecord.from_stored(MAC, "from-the-future", 1.0, 0, "", {})
    assert unknown.phase is P.PENDING
    assert unknown.attempt == 1
    resumed = resume(r, 500.0, D)
    assert resumed.since == 5.0  # "since when" is kept
    assert resumed.deadline == 500.0 + 60


@pytest.mark.parametrize(
    ("phase", "action", "boot"),
    [
        (P.PENDING, Action.CHECK_BMC, BootAction.PXE),
        (P.BMC_OK, Action.ARM_PXE, BootAction.PXE),
        (P.PXE_ARMED, Action.POWER_CYCLE, BootAction.PXE),
        (P.KERNEL_FETCHED, Action.WAIT, BootAction.PXE),
        (P.INSTALLED, Action.SET_DISK, BootAction.DISK),
        (P.REBOOTED, Action.WAIT, BootAction.DISK),
        (P.READY, Action.DONE, BootAction.DISK),
        (P.FAILED, Action.GIVE_UP, BootAction.PXE),
    ],
)
def test_actions_and_boot_policy(phase: Phase, action: Action, boot: BootAction) -> None:
    assert next_action(rec(phase)) is action
    assert boot_action(phase) is boot
    assert boot_action(None) is BootAction.PXE


def dhcp(message: str, kind: str, direction: str = "in") -> DhcpEvent:
    return DhcpEvent("x", MAC, 0.0, message=message, client_kind=kind, direction=direction)


def http(path: str, status: int = 200, method: str = "GET") -> HttpEvent:
    return HttpEvent("request", MAC, 0.0, path=path, status=status, method=method)


@pytest.mark.parametrize(
    ("event", "signal"),
    [
        (dhcp("DISCOVER", "bios"), S.DHCP_PXE),
        (dhcp("REQUEST", "ipxe"), S.DHCP_PXE),
        (dhcp("DISCOVER", "uefi"), S.DHCP_PXE),
        (dhcp("DISCOVER", "os"), S.DHCP_OS),
        (dhcp("ACK", "os", "out"), S.LEASED_OS),
        (dhcp("ACK", "bios", "out"), None),
        (dhcp("OFFER", "os", "out"), None),
        (dhcp("RELEASE", "os"), None),
        (TftpEvent("transfer-finished", MAC, 0.0, file="undionly.kpxe"), S.LOADER),
        (TftpEvent("transfer-failed", MAC, 0.0, error="timeout"), None),
        (TftpEvent("transfer-started", MAC, 0.0), None),
        (http("/boot.ipxe"), S.SCRIPT),
        (http("/ipxe"), S.SCRIPT),
        (http("/ipxe", 500), None),
        (http("/assets/flatcar/1.0/flatcar_production_pxe.vmlinuz"), S.KERNEL),
        (http("/assets/x", method="HEAD"), None),
        (http("/ignition"), S.IGNITION),
        (http("/ignition", 403), None),
        (http("/api/v1/events", method="POST"), None),
        (PhoneHomeEvent("install-started", MAC, 0.0), S.INSTALL_STARTED),
        (PhoneHomeEvent("installed", MAC, 0.0), S.INSTALLED),
        (PhoneHomeEvent("failed", MAC, 0.0, message="disk"), S.INSTALL_FAILED),
        (BmcEvent("command", MAC, 0.0), None),
    ],
)
def test_classify(event: object, signal: Signal | None) -> None:
    assert classify(event) is signal  # type: ignore[arg-type]
