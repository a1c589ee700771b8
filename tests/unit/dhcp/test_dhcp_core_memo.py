"""The core remembers what a request's bytes say and its encoded replies (``DhcpCore.handle``):
that must never change an outcome. A core that remembers nothing is the reference."""

from __future__ import annotations

import dataclasses
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from racker.dhcp.core import DhcpCore, Outcome
from racker.model import BootAction
from tests.unit.dhcp.corekit import (
    BMC_MAC,
    NODE_IP,
    NODE_MAC,
    RELAY_IP,
    SERVER,
    UNKNOWN_MAC,
    feed,
    make_core,
    reply_of,
    request,
)

MACS = (NODE_MAC, BMC_MAC, UNKNOWN_MAC)
PXE = [("client_arch", b"\x00\x07"), ("vendor_class_id", b"PXEClient:Arch:00007:UNDI:003016")]
IPXE = [*PXE, ("user_class", b"iPXE")]
HTTP = [("client_arch", b"\x00\x10"), ("vendor_class_id", b"HTTPClient:Arch:00016:UNDI:003000")]
ADDRESSES = ("10.99.0.192", "10.98.1.0", NODE_IP)


def _requests() -> list[bytes]:
    """A small universe of requests, so a random sequence repeats them (and hits the memo)."""
    out: list[bytes] = []
    for mac in MACS:
        for extra in ([], PXE, IPXE, HTTP):
            out.append(request("discover", mac, extra))
            out.append(request("discover", mac, extra, giaddr=RELAY_IP, hops=1))
        out.append(request("inform", mac, PXE, ciaddr=NODE_IP))
        for address in ADDRESSES:
            selecting = [("server_id", SERVER), ("requested_addr", address)]
            out.append(request("request", mac, [*PXE, *selecting]))
            out.append(request("request", mac, selecting, giaddr=RELAY_IP, hops=1))
            out.append(request("request", mac, [("requested_addr", address)]))
            out.append(request("request", mac, ciaddr=address))
        out.append(request("decline", mac, [("requested_addr", NODE_IP)]))
        out.append(request("release", mac, ciaddr=ADDRESSES[0]))
        out.append(request("request", mac, [("server_id", "10.99.0.9")]))
    return out


REQUESTS = _requests()


def _with(data: bytes, xid: int, secs: int, broadcast: bool) -> bytes:
    flags = (0x8000 if broadcast else 0).to_bytes(2, "big")
    return data[:4] + xid.to_bytes(4, "big") + secs.to_bytes(2, "big") + flags + data[12:]


def _comparable(outcome: Outcome) -> tuple[Any, ...]:
    return (
        outcome.reply,
        outcome.destination,
        [dataclasses.asdict(e) for e in outcome.events],
        outcome.warning,
    )


def _leases(core: DhcpCore) -> list[tuple[Any, ...]]:
    table = core.leases
    return sorted(
        (m, e.address, e.state, e.expires, e.client_id, e.hostname)
        for m in MACS
        if (e := table.for_mac(m)) is not None
    )


step = st.tuples(
    st.integers(0, len(REQUESTS) - 1),  # which request
    st.sampled_from([False, False, False, True]),  # from UDP port 67 (a relay agent)?
    st.sampled_from([False, False, False, True]),  # the broadcast flag
    st.integers(0, 2**32 - 1),  # its xid
    st.integers(0, 2**16 - 1),  # its secs
    st.floats(0, 700),  # seconds since the last message (pool leases last 600 s)
    st.booleans(),  # the node's policy: boot from disk?
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["pool", "ignore"]),
    st.sampled_from([False, True, ["worker"]]),  # boot.uefi_http: the node's type, or all
    st.lists(step, min_size=30, max_size=80),
)
def test_remembering_requests_never_changes_an_outcome(
    unknown: str,
    uefi_http: bool | list[str],
    steps: list[tuple[int, bool, bool, int, int, float, bool]],
) -> None:
    disk: dict[str, bool] = {}

    def policy(mac: str) -> BootAction:
        return BootAction.DISK if disk.get(mac) else BootAction.PXE

    remembering = make_core(unknown, policy=policy, uefi_http=uefi_http)
    reference = make_core(unknown, policy=policy, memo_size=0, uefi_http=uefi_http)
    now = 1000.0
    for index, relayed, broadcast, xid, secs, dt, to_disk in steps:
        data, now = _with(REQUESTS[index], xid, secs, broadcast), now + dt
        disk[NODE_MAC] = to_disk
        got = _comparable(feed(remembering, data, now, relayed))
        want = _comparable(feed(reference, data, now, relayed))
        assert got == want
        assert _leases(remembering) == _leases(reference)
        assert remembering.leases.take_changes() == reference.leases.take_changes()


def test_a_repeated_request_gets_its_own_xid() -> None:
    core = make_core()
    first = feed(core, request("discover", NODE_MAC, PXE, xid=1))
    again = feed(core, request("discover", NODE_MAC, PXE, xid=0xDEADBEEF))
    assert reply_of(first).xid == 1
    assert reply_of(again).xid == 0xDEADBEEF
    assert [e.xid for e in again.events] == [0xDEADBEEF, 0xDEADBEEF]  # type: ignore[attr-defined]
    assert again.reply is not None and first.reply is not None
    assert again.reply[8:] == first.reply[8:]


def test_a_remembered_request_still_follows_the_node_policy() -> None:
    disk = {NODE_MAC: False}
    core = make_core(policy=lambda mac: BootAction.DISK if disk[mac] else BootAction.PXE)
    data = request("discover", NODE_MAC, PXE)
    assert reply_of(feed(core, data)).file == b"ipxe.efi"
    disk[NODE_MAC] = True  # installed: boots from disk
    assert reply_of(feed(core, data)).file == b""
    assert 67 not in reply_of(feed(core, data)).options


def test_a_remembered_request_still_follows_the_lease_table() -> None:
    core = make_core()
    discover = request("discover", NODE_MAC)
    assert feed(core, discover).reply is not None
    decline = request("decline", NODE_MAC, [("requested_addr", NODE_IP)])
    feed(core, decline, now=1001.0)
    quiet = feed(core, discover, now=1002.0)  # the reserved address is quarantined
    assert quiet.reply is None
    assert "declined" in quiet.events[0].reason  # type: ignore[attr-defined]
    assert feed(core, discover, now=1001.0 + 601).reply is not None


def test_the_memory_is_bounded() -> None:
    core = make_core("pool", memo_size=4)
    for i in range(50):
        mac = f"52:54:00:dd:00:{i:02x}"
        assert feed(core, request("discover", mac)).reply is not None
        assert len(core._requests) <= 4


def test_events_nobody_keeps_are_not_built_and_the_reply_is_the_same() -> None:
    asked: list[tuple[str, int]] = []

    def keeps(mac: str, count: int) -> bool:
        asked.append((mac, count))
        return False

    quiet = make_core("pool", memo_size=0, keeps=keeps)
    loud = make_core("pool", memo_size=0)
    for data in (request("discover", UNKNOWN_MAC), request("request", UNKNOWN_MAC)):
        got, want = feed(quiet, data), feed(loud, data)
        assert (got.reply, got.destination) == (want.reply, want.destination)
        # The discovery of a new MAC is always told; the message events are not built.
        assert got.events == [e for e in want.events if e.kind == "discovery"]
    assert asked == [(UNKNOWN_MAC, 2), (UNKNOWN_MAC, 1)]  # an OFFER; a REQUEST without address
