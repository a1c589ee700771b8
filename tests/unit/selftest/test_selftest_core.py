"""The DHCP core and the self-test's client, joined in memory: requests crafted with scapy by
racker.selftest.dhcp, answered by the core, the answers parsed by scapy and checked."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.compat import raw
from scapy.layers.dhcp import BOOTP

from racker.dhcp.core import DhcpCore, ReceiveInfo
from racker.dhcp.events import log_line
from racker.dhcp.selftest import TEST_ADDRESS, SelfTestGate, make_proof
from racker.dhcp.settings import DhcpSettings, core_settings
from racker.events import DhcpEvent, DiscoveryEvent
from racker.model import BootAction
from racker.selftest.dhcp import KINDS, FirmwareKind, build_request, expected_boot, verify_reply
from racker.selftest.report import CheckFailed
from racker.selftest.target import Target
from tests.unit.dhcp.corekit import BMC_MAC, NODE, PLAN, RESERVATIONS, SERVER, config

KEY = bytes(range(32))
NOW = 1_800_000_000.0
MAC = bytes.fromhex("02aabbccdd01")
XID = 0xCAFE0001
RELAYED = ReceiveInfo(relayed=True)
SERVER_ID = bytes(int(p) for p in SERVER.split("."))


def make_core(unknown: str = "ignore", uefi_http: bool = False, key: bytes = KEY) -> DhcpCore:
    return DhcpCore(
        core_settings(config(unknown, uefi_http=uefi_http), PLAN, http_port=8080, nodes=[NODE]),
        RESERVATIONS,
        (),
        lambda _mac: BootAction.PXE,
        [BMC_MAC],
        selftest=SelfTestGate(key),
    )


def target_of(core: DhcpCore, key: bytes = KEY) -> Target:
    return Target("pxe0", SERVER, 8080, key, core.settings.boot, {})


def request(
    core: DhcpCore, kind: FirmwareKind, mtype: int, key: bytes = KEY, when: float = NOW
) -> bytes:
    extra = {50: TEST_ADDRESS.packed, 54: SERVER_ID} if mtype == 3 else {}
    packet = build_request(target_of(core, key), kind, MAC, XID, mtype, extra, when)
    return raw(packet[BOOTP])


def answered(core: DhcpCore, data: bytes, now: float = NOW) -> tuple[Any, Any]:
    outcome = core.handle(data, RELAYED, now)
    assert outcome.reply is not None and outcome.destination is not None
    return BOOTP(outcome.reply), outcome


@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
@pytest.mark.parametrize("uefi_http", [False, True], ids=["tftp-uefi", "uefi-http"])
def test_each_kind_gets_its_boot_file_and_no_lease(kind: FirmwareKind, uefi_http: bool) -> None:
    core = make_core(uefi_http=uefi_http)
    want = expected_boot(target_of(core), kind, MAC)
    for mtype, reply_type in ((1, 2), (3, 5)):
        reply, outcome = answered(core, request(core, kind, mtype))
        verify_reply(reply, reply_type, SERVER_ID, want)
        assert reply.xid == XID
        # To the client's MAC on the link, not back to the relay port (racker's own).
        assert outcome.destination.mac == MAC
        assert outcome.destination.port == 68
        [event] = outcome.events
        assert isinstance(event, DhcpEvent)
        assert (event.kind, event.mac, event.address) == ("selftest", MAC.hex(":"), "192.0.2.1")
        name = "OFFER" if reply_type == 2 else "ACK"
        boot = f"boot {want.file}" if want else "no boot file"
        assert log_line(event) == (
            f"DHCP selftest {name} 192.0.2.1 to {MAC.hex(':')} ({kind.name}), {boot} (no lease)"
        )
    assert list(core.leases.held()) == []
    assert not core.leases.pending


def test_what_each_kind_should_get() -> None:
    files = {}
    for uefi_http in (False, True):
        target = target_of(make_core(uefi_http=uefi_http))
        for kind in KINDS:
            want = expected_boot(target, kind, MAC)
            files[kind.name, uefi_http] = want.file if want else None
    assert files == {
        ("bios", False): "undionly.kpxe",
        ("uefi", False): "ipxe.efi",
        ("ipxe", False): "http://10.99.0.1:8080/boot.ipxe",
        ("uefi-http", False): "http://10.99.0.1:8080/ipxe.efi",
        ("bios", True): "undionly.kpxe",
        ("uefi", True): None,  # falls through to its HTTP boot entry
        ("ipxe", True): "http://10.99.0.1:8080/boot.ipxe",
        ("uefi-http", True): "http://10.99.0.1:8080/ipxe.efi",
    }


def test_verify_reply_refuses_a_wrong_boot_file() -> None:
    core = make_core()
    bios, uefi = KINDS[0], KINDS[1]
    reply, _ = answered(core, request(core, bios, 1))
    with pytest.raises(CheckFailed, match=r"boot file 'undionly\.kpxe', expected 'ipxe\.efi'"):
        verify_reply(reply, 2, SERVER_ID, expected_boot(target_of(core), uefi, MAC))
    with pytest.raises(CheckFailed, match="expected ACK"):
        verify_reply(reply, 5, SERVER_ID, expected_boot(target_of(core), bios, MAC))


def test_a_forged_proof_is_any_client_ignored() -> None:
    core = make_core(unknown="ignore")
    outcome = core.handle(request(core, KINDS[0], 1, key=b"x" * 32), RELAYED, NOW)
    assert outcome.reply is None
    assert any(isinstance(e, DiscoveryEvent) for e in outcome.events)
    assert not any(getattr(e, "kind", "") == "selftest" for e in outcome.events)


def test_a_forged_proof_is_any_client_allocated_from_the_pool() -> None:
    core = make_core(unknown="pool")
    reply, outcome = answered(core, request(core, KINDS[0], 1, key=b"x" * 32))
    assert reply.yiaddr != str(TEST_ADDRESS)
    assert reply.yiaddr.startswith("10.99.0.")
    assert core.leases.for_mac(MAC.hex(":")) is not None  # an ordinary offer, held
    assert outcome.destination.mac is None  # back to the relay, as any relayed request


def test_a_stale_or_replayed_proof_is_any_client() -> None:
    core = make_core(unknown="pool")
    bios = KINDS[0]
    stale = core.handle(request(core, bios, 1, when=NOW - 120), RELAYED, NOW)
    assert stale.reply is not None and BOOTP(stale.reply).yiaddr != str(TEST_ADDRESS)
    core = make_core(unknown="ignore")
    data = request(core, bios, 1)
    first, _ = answered(core, data)
    assert first.yiaddr == str(TEST_ADDRESS)
    again = core.handle(data, RELAYED, NOW + 1)
    assert again.reply is None  # replayed: ignored as the stranger it is


def test_the_same_bytes_with_another_xid_are_no_proof() -> None:
    # The core's memo knows a request by its bytes without the xid: the proof must be checked
    # against the xid of the bytes received, not the remembered message's.
    core = make_core(unknown="ignore")
    data = request(core, KINDS[0], 1)
    answered(core, data)
    other = data[:4] + (XID + 1).to_bytes(4, "big") + data[8:]
    assert core.handle(other, RELAYED, NOW).reply is None


def test_a_proven_release_is_answered_with_nothing_and_changes_nothing() -> None:
    core = make_core()
    packet = build_request(target_of(core), KINDS[0], MAC, XID, 7, {}, NOW)
    outcome = core.handle(raw(packet[BOOTP]), RELAYED, NOW)
    assert (outcome.reply, outcome.destination, outcome.events) == (None, None, [])
    assert list(core.leases.held()) == []


def test_a_core_without_a_gate_serves_the_option_as_any_client() -> None:
    core = make_core(unknown="pool")
    plain = DhcpCore(core.settings, RESERVATIONS, (), lambda _m: BootAction.PXE, [BMC_MAC])
    reply, _ = answered(plain, request(core, KINDS[0], 1))
    assert reply.yiaddr != str(TEST_ADDRESS)


def test_the_proof_is_in_option_243_of_the_crafted_request() -> None:
    core = make_core()
    data = request(core, KINDS[0], 1)
    assert make_proof(KEY, MAC, XID, 1, NOW) in data


def test_a_reload_keeps_the_gate() -> None:
    # SIGHUP swaps in core.reconfigured(...): the self-test must still be recognised after it.
    core = make_core()
    settings = DhcpSettings(core.settings, RESERVATIONS, frozenset({BMC_MAC}), frozenset())
    reloaded = core.reconfigured(settings, [])
    reply, _ = answered(reloaded, request(reloaded, KINDS[0], 1))
    assert reply.yiaddr == str(TEST_ADDRESS)
