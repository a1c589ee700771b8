"""The DHCP core's decisions, one table row per rule (RFC 2131 message set, addressing,
reservations vs unknown clients, relays, leases)."""

from __future__ import annotations

import dataclasses

import pytest

from racker.dhcp.events import Exchange, stamped
from racker.dhcp.options import MIN_MESSAGE_LEN
from racker.dhcp.reply import BROADCAST, Destination
from racker.errors import PacketError
from racker.events import DhcpEvent, DiscoveryEvent
from racker.store import Lease
from tests.unit.dhcp.corekit import (
    BMC_IP,
    BMC_MAC,
    IP,
    NODE_IP,
    NODE_MAC,
    RELAY_IP,
    SERVER,
    UNKNOWN_MAC,
    feed,
    ip,
    make_core,
    reply_of,
    request,
)

MAC_BYTES = bytes.fromhex(NODE_MAC.replace(":", ""))


def dora(core, mac: str = NODE_MAC, now: float = 1000.0, options=(), **kw):  # type: ignore[no-untyped-def]
    """DISCOVER + REQUEST (SELECTING); returns the decoded OFFER and the REQUEST's outcome."""
    offer = reply_of(feed(core, request("discover", mac, list(options), **kw), now))
    selecting = [*options, ("server_id", SERVER), ("requested_addr", ip(offer.yiaddr))]
    return offer, feed(core, request("request", mac, selecting, **kw), now)


@pytest.mark.parametrize(
    ("mac", "address", "lease"),
    [(NODE_MAC, NODE_IP, 86400), (BMC_MAC, BMC_IP, 86400)],
)
def test_reserved_macs_get_their_address(mac: str, address: str, lease: int) -> None:
    offer, ack = dora(make_core(), mac)
    assert ip(offer.yiaddr) == address
    assert offer.options[53] == b"\x02"
    assert offer.options[54] == IP(SERVER).packed
    assert int.from_bytes(offer.options[51], "big") == lease
    assert reply_of(ack).options[53] == b"\x05"
    assert ip(reply_of(ack).yiaddr) == address


def test_reply_carries_network_options() -> None:
    offer = reply_of(feed(make_core(), request("discover")))
    assert ip(offer.options[1]) == "255.255.255.0"
    assert ip(offer.options[3]) == "10.99.0.254"
    assert ip(offer.options[6]) == "10.99.0.53"
    assert ip(offer.options[28]) == "10.99.0.255"
    assert int.from_bytes(offer.options[58], "big") == 43200
    assert int.from_bytes(offer.options[59], "big") == 75600


def test_options_follow_the_parameter_list_with_53_first() -> None:
    out = feed(make_core(), request("discover", options=[("param_req_list", [6, 3, 1, 54, 28])]))
    assert list(reply_of(out).options)[:6] == [53, 6, 3, 1, 54, 28]


def test_client_id_uuid_and_relay_info_are_echoed_82_last() -> None:
    options = [
        ("client_id", b"\x01" + MAC_BYTES),
        ("pxe_client_machine_identifier", b"\x00" + bytes(range(16))),
        ("relay_agent_information", b"\x01\x04abcd"),
    ]
    reply = reply_of(feed(make_core(), request("discover", options=options, giaddr="10.99.0.2")))
    assert reply.options[61] == b"\x01" + MAC_BYTES
    assert reply.options[97] == b"\x00" + bytes(range(16))
    assert list(reply.options)[-1] == 82
    assert reply.options[82] == b"\x01\x04abcd"


def test_replies_are_at_least_300_bytes() -> None:
    assert len(feed(make_core(), request("discover")).reply or b"") >= MIN_MESSAGE_LEN


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, Destination(NODE_IP, 68, MAC_BYTES)),  # no flag, no ciaddr: unicast to yiaddr
        ({"flags": 0x8000}, BROADCAST),  # broadcast bit
        ({"giaddr": "10.99.0.2"}, Destination("10.99.0.2", 67, None)),  # relay: giaddr:67
        ({"ciaddr": NODE_IP}, Destination(NODE_IP, 68, MAC_BYTES)),  # renewing: ciaddr
        ({"ciaddr": NODE_IP, "flags": 0x8000}, Destination(NODE_IP, 68, MAC_BYTES)),
    ],
)
def test_reply_addressing_rfc2131_4_1(kwargs: dict[str, object], expected: Destination) -> None:
    out = feed(make_core(), request("discover", **kwargs))  # type: ignore[arg-type]
    assert out.destination == expected


def test_unknown_mac_is_ignored_and_reported_once() -> None:
    core = make_core()
    first = feed(
        core, request("discover", UNKNOWN_MAC, [("vendor_class_id", b"PXEClient:Arch:00000")])
    )
    second = feed(core, request("discover", UNKNOWN_MAC))
    assert first.reply is None
    assert second.reply is None
    found = [e for e in first.events + second.events if isinstance(e, DiscoveryEvent)]
    assert len(found) == 1
    assert found[0].mac == UNKNOWN_MAC
    assert found[0].vendor_class == "PXEClient:Arch:00000"
    assert found[0].client_arch == 0
    assert "ignore" in first.events[0].reason  # type: ignore[attr-defined]


def test_unknown_mac_gets_a_pool_address_with_the_pool_lease_time() -> None:
    offer, ack = dora(make_core("pool"), UNKNOWN_MAC)
    assert ip(offer.yiaddr) == "10.99.0.192"
    assert int.from_bytes(offer.options[51], "big") == 600
    assert ip(reply_of(ack).yiaddr) == "10.99.0.192"


def test_pool_clients_keep_their_address_and_do_not_collide() -> None:
    core = make_core("pool")
    macs = [f"52:54:00:cc:01:{i:02x}" for i in range(5)]
    got = [ip(dora(core, mac)[0].yiaddr) for mac in macs]
    assert len(set(got)) == 5
    assert ip(dora(core, macs[2], now=2000)[0].yiaddr) == got[2]


def test_request_for_another_server_cancels_silently() -> None:
    core = make_core()
    feed(core, request("discover"))
    out = feed(
        core, request("request", options=[("server_id", "10.99.0.9"), ("requested_addr", NODE_IP)])
    )
    assert out.reply is None
    assert "10.99.0.9" in out.events[0].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "kwargs", "expected"),
    [
        ([("requested_addr", NODE_IP)], {}, b"\x05"),  # INIT-REBOOT, right address
        ([("requested_addr", "10.99.0.70")], {}, b"\x06"),  # INIT-REBOOT, wrong address
        ([("requested_addr", "10.77.0.5")], {}, b"\x06"),  # INIT-REBOOT, other network
        ([], {"ciaddr": NODE_IP}, b"\x05"),  # RENEWING
        ([], {"ciaddr": NODE_IP, "flags": 0x8000}, b"\x05"),  # REBINDING
        ([], {"ciaddr": "10.99.0.70"}, b"\x06"),  # renewing an address that is not its own
        ([("server_id", SERVER), ("requested_addr", "10.99.0.70")], {}, b"\x06"),
    ],
)
def test_request_states(options: list[object], kwargs: dict[str, object], expected: bytes) -> None:
    out = feed(make_core(), request("request", options=options, **kwargs))  # type: ignore[arg-type]
    assert reply_of(out).options[53] == expected


def test_nak_is_broadcast_and_relay_nak_sets_the_broadcast_bit() -> None:
    core = make_core()
    nak = feed(core, request("request", options=[("requested_addr", "10.99.0.70")]))
    assert nak.destination == BROADCAST
    assert 56 in reply_of(nak).options
    relayed = feed(
        core, request("request", options=[("requested_addr", "10.99.0.70")], giaddr="10.99.0.2")
    )
    assert relayed.destination == Destination("10.99.0.2", 67, None)
    assert reply_of(relayed).flags & 0x8000


def test_unknown_client_request_is_not_answered() -> None:
    out = feed(make_core(), request("request", UNKNOWN_MAC, [("requested_addr", "10.99.0.200")]))
    assert out.reply is None


def test_ack_binds_and_queues_the_lease_for_persisting() -> None:
    core = make_core()
    dora(core, options=[("hostname", b"node1"), ("client_id", b"\x01" + MAC_BYTES)])
    (lease,) = core.leases.take_changes()
    assert (lease.address, lease.mac, lease.state) == (int(IP(NODE_IP)), NODE_MAC, "bound")
    assert lease.expires == 1000 + 86400
    assert lease.hostname == "node1"
    assert lease.client_id == b"\x01" + MAC_BYTES
    assert core.leases.take_changes() == []  # taken once


def test_offers_are_not_persisted() -> None:
    core = make_core("pool")
    feed(core, request("discover", UNKNOWN_MAC))
    assert core.leases.take_changes() == []


def test_relayed_request_is_served_from_the_relay_segment() -> None:
    core = make_core("pool")
    out = feed(core, request("discover", UNKNOWN_MAC, giaddr=RELAY_IP, hops=1), relayed=True)
    offer = reply_of(out)
    assert ip(offer.yiaddr) == "10.98.1.0"
    assert ip(offer.options[1]) == "255.255.240.0"
    assert ip(offer.options[3]) == "10.98.0.1"
    assert ip(offer.giaddr) == RELAY_IP
    assert out.destination == Destination(RELAY_IP, 67, None)


def test_relayed_reserved_node_outside_the_segment_is_not_served_when_ignoring() -> None:
    out = feed(make_core(), request("discover", giaddr=RELAY_IP), relayed=True)
    assert out.reply is None


@pytest.mark.parametrize(
    ("giaddr", "relayed", "reason"),
    [("172.16.0.1", True, "no dhcp.relays segment"), ("0.0.0.0", True, "giaddr is 0.0.0.0")],
)
def test_relay_without_a_segment_is_dropped(giaddr: str, relayed: bool, reason: str) -> None:
    out = feed(make_core("pool"), request("discover", UNKNOWN_MAC, giaddr=giaddr), relayed=relayed)
    assert out.reply is None
    assert reason in out.events[0].reason  # type: ignore[attr-defined]


def test_decline_quarantines_the_address() -> None:
    core = make_core("pool", relay_pool="10.98.1.0-10.98.1.2")
    relay = {"giaddr": RELAY_IP}
    offer, _ = dora(core, UNKNOWN_MAC, **relay)
    declined = ip(offer.yiaddr)
    decline = [("server_id", SERVER), ("requested_addr", declined)]
    out = feed(core, request("decline", UNKNOWN_MAC, decline, **relay))
    assert out.reply is None
    assert "quarantined" in out.events[0].reason  # type: ignore[attr-defined]
    assert [c.state for c in core.leases.take_changes()] == ["declined"]
    assert ip(dora(core, UNKNOWN_MAC, now=1001, **relay)[0].yiaddr) != declined
    assert ip(dora(core, "52:54:00:dd:00:01", now=1002, **relay)[0].yiaddr) != declined
    late = "52:54:00:dd:00:02"
    assert feed(core, request("discover", late, **relay), now=1500).reply is None  # quarantined
    # After the quarantine (600 s) the address is handed out again.
    assert (
        ip(reply_of(feed(core, request("discover", late, **relay), now=1600.5)).yiaddr) == declined
    )


def test_release_frees_the_pool_address() -> None:
    core = make_core("pool", relay_pool="10.98.1.0-10.98.1.0")
    offer, _ = dora(core, UNKNOWN_MAC, giaddr=RELAY_IP)
    assert ip(offer.yiaddr) == "10.98.1.0"
    other = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert other.reply is None  # a one-address pool is exhausted
    assert "exhausted" in other.events[0].reason  # type: ignore[attr-defined]
    feed(
        core,
        request(
            "release", UNKNOWN_MAC, [("server_id", SERVER)], ciaddr="10.98.1.0", giaddr=RELAY_IP
        ),
    )
    # Not before the release is committed: a crash in between would bring the binding back.
    unsaved = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert unsaved.reply is None and "exhausted" in unsaved.events[0].reason  # type: ignore[attr-defined]
    changes = core.leases.take_changes()
    assert [c.state for c in changes] == ["released"]
    in_flight = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert in_flight.reply is None
    core.leases.settle(changes)
    again = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert ip(reply_of(again).yiaddr) == "10.98.1.0"


def test_a_release_that_failed_to_commit_is_pending_again_and_keeps_the_address() -> None:
    core = make_core("pool", relay_pool="10.98.1.0-10.98.1.0")
    dora(core, UNKNOWN_MAC, giaddr=RELAY_IP)
    core.leases.settle(core.leases.take_changes())
    release = request(
        "release", UNKNOWN_MAC, [("server_id", SERVER)], ciaddr="10.98.1.0", giaddr=RELAY_IP
    )
    feed(core, release)
    changes = core.leases.take_changes()
    core.leases.settle(changes, committed=False)
    assert core.leases.pending == 1 and core.leases.is_unsettled(int(IP("10.98.1.0")))
    other = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert other.reply is None
    core.leases.settle(core.leases.take_changes())
    assert core.leases.unsettled == 0
    again = feed(core, request("discover", "52:54:00:dd:00:01", giaddr=RELAY_IP))
    assert ip(reply_of(again).yiaddr) == "10.98.1.0"


def test_inform_gets_configuration_without_lease_time() -> None:
    out = feed(make_core(), request("inform", ciaddr=NODE_IP))
    ack = reply_of(out)
    assert ack.options[53] == b"\x05"
    assert 51 not in ack.options
    assert ack.yiaddr == bytes(4)
    assert ip(ack.ciaddr) == NODE_IP
    assert out.destination == Destination(NODE_IP, 68, MAC_BYTES)


def test_persisted_leases_are_honoured_after_a_restart() -> None:
    core = make_core("pool")
    offer, _ = dora(core, UNKNOWN_MAC)
    saved = [
        Lease(IP(c.address), c.mac, c.state, c.expires, c.client_id, c.hostname)
        for c in core.leases.take_changes()
    ]
    restarted = make_core("pool", leases=saved)
    assert (
        reply_of(feed(restarted, request("discover", "52:54:00:dd:00:09"))).yiaddr != offer.yiaddr
    )
    assert reply_of(feed(restarted, request("discover", UNKNOWN_MAC))).yiaddr == offer.yiaddr
    renew = feed(restarted, request("request", UNKNOWN_MAC, ciaddr=ip(offer.yiaddr)))
    assert reply_of(renew).options[53] == b"\x05"


def test_every_message_yields_in_and_out_events() -> None:
    options = [
        ("pxe_client_architecture", b"\x00\x07"),
        ("vendor_class_id", b"PXEClient:Arch:00007"),
    ]
    out = feed(make_core(), request("discover", options=options, xid=0xABCD))
    first, last = out.events
    assert isinstance(first, DhcpEvent)
    assert isinstance(last, DhcpEvent)
    assert (first.kind, first.direction, first.xid, first.mac) == (
        "discover",
        "in",
        0xABCD,
        NODE_MAC,
    )
    assert (first.client_arch, first.client_kind) == (7, "uefi")
    assert (last.kind, last.direction, last.address, last.boot_file) == (
        "offer",
        "out",
        NODE_IP,
        "ipxe.efi",
    )
    bmc = feed(make_core(), request("discover", BMC_MAC)).events[0]
    assert bmc.client_kind == "bmc"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes(request("discover")[:100]), "truncated"),
        (b"\x02" + request("discover")[1:], "BOOTREQUEST"),
        (request("discover")[:236] + b"\x63\x82\x53\x63\xff", "message type"),
        (request("discover")[:1] + b"\x06" + request("discover")[2:], "Ethernet"),
    ],
)
def test_malformed_or_unservable_messages_raise(data: bytes, reason: str) -> None:
    core = make_core()
    with pytest.raises(PacketError, match=reason):
        feed(core, data)
    assert core.leases.take_changes() == []


def test_max_message_size_is_respected() -> None:
    long_prl = list(range(1, 255))
    options = [
        ("max_dhcp_size", 576),
        ("param_req_list", long_prl),
        ("relay_agent_information", b"x" * 250),
    ]
    reply = feed(make_core(), request("discover", options=options, giaddr="10.99.0.2")).reply
    assert reply is not None
    assert len(reply) <= 576 - 28
    kept = reply_of(feed(make_core(), request("discover", options=options, giaddr="10.99.0.2")))
    assert {53, 54, 51, 1, 82} <= set(kept.options)


def test_fast_dhcp_events_equal_constructed_ones() -> None:
    # stamped fills the instance dict directly (cheaper than the frozen __init__); it must
    # stay the same object a constructor would build, field for field, if DhcpEvent changes.
    fast = stamped(Exchange(NODE_MAC, 1, 7, "uefi", None).sent(5, NODE_IP, "ipxe.efi"), 1.5, 7)
    built = DhcpEvent(
        kind="ack",
        mac=NODE_MAC,
        ts=1.5,
        xid=7,
        message="ACK",
        direction="out",
        client_arch=7,
        client_kind="uefi",
        address=NODE_IP,
        boot_file="ipxe.efi",
        reason="",
    )
    assert fast == built
    assert fast.to_dict() == built.to_dict()
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(DhcpEvent)}
    assert hash(fast) == hash(built)


def test_fast_received_events_equal_constructed_ones() -> None:
    fast = stamped(Exchange(NODE_MAC, 3, None, "bios", NODE_IP).received(), 1.5, 7, "a reason")
    built = DhcpEvent(
        kind="request",
        mac=NODE_MAC,
        ts=1.5,
        xid=7,
        message="REQUEST",
        direction="in",
        client_arch=None,
        client_kind="bios",
        address=NODE_IP,
        boot_file=None,
        reason="a reason",
    )
    assert fast == built
    assert fast.to_dict() == built.to_dict()
    assert list(vars(fast)) == [f.name for f in dataclasses.fields(DhcpEvent)]
    assert hash(fast) == hash(built)


def test_a_declined_reserved_address_is_not_offered_during_the_quarantine() -> None:
    # RFC 2131 §4.3.3: the node found its reserved address answered by another host. Offering
    # it again would only repeat the DECLINE; the operator is told which node and address.
    core = make_core()
    offer, _ = dora(core, NODE_MAC)
    assert ip(offer.yiaddr) == NODE_IP
    decline = [("server_id", SERVER), ("requested_addr", NODE_IP)]
    out = feed(core, request("decline", NODE_MAC, decline), now=1001)
    assert out.reply is None
    assert NODE_MAC in out.warning and NODE_IP in out.warning
    assert "in use by another host" in out.warning
    during = feed(core, request("discover", NODE_MAC), now=1500)
    assert during.reply is None
    assert "was declined" in during.events[0].reason  # type: ignore[attr-defined]
    assert ip(reply_of(feed(core, request("discover", NODE_MAC), now=1602)).yiaddr) == NODE_IP
    # Other nodes are not affected, and ordinary messages carry no warning.
    other = feed(core, request("discover", BMC_MAC), now=1500)
    assert ip(reply_of(other).yiaddr) == BMC_IP
    assert other.warning == ""


def test_a_decline_without_a_requested_address_still_warns_readably() -> None:
    out = feed(make_core(), request("decline", NODE_MAC, [("server_id", SERVER)]))
    assert out.reply is None
    assert out.warning == f"{NODE_MAC} declined 0.0.0.0: DECLINE without a requested address (50)"


@pytest.mark.parametrize("mtype", ["offer", "ack", "nak"])
def test_server_messages_from_a_client_are_not_answered(mtype: str) -> None:
    core = make_core()
    out = feed(core, request(mtype, NODE_MAC))
    assert out.reply is None
    assert out.events[0].reason == f"{mtype.upper()} is a server message"  # type: ignore[attr-defined]
    assert core.leases.for_mac(NODE_MAC) is None
