"""Lease caching (``dhcp.cache_threshold``): a bound client asking again soon is told the time
left of its lease, and nothing changes or is written; past the threshold, a full renewal."""

from __future__ import annotations

import dataclasses

from racker.dhcp.core import DhcpCore
from racker.dhcp.settings import core_settings
from racker.store import Lease
from tests.unit.dhcp.corekit import (
    IP,
    NODE_IP,
    NODE_MAC,
    PLAN,
    RESERVATIONS,
    SERVER,
    UNKNOWN_MAC,
    config,
    feed,
    reply_of,
    request,
)

SELECTING = [("server_id", SERVER), ("requested_addr", NODE_IP)]
DAY = 86400


def core_with(threshold: float, unknown: str = "ignore") -> DhcpCore:
    cfg = config(unknown)
    cfg = dataclasses.replace(cfg, dhcp=dataclasses.replace(cfg.dhcp, cache_threshold=threshold))
    return DhcpCore(core_settings(cfg, PLAN, http_port=8080), RESERVATIONS)


def times(outcome) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    options = reply_of(outcome).options
    return tuple(int.from_bytes(options[code], "big") for code in (51, 58, 59))  # type: ignore[return-value]


def test_a_young_lease_is_acknowledged_as_it_stands_and_nothing_is_written() -> None:
    core = core_with(0.25)
    first = feed(core, request("request", NODE_MAC, SELECTING), now=1000.0)
    assert times(first) == (DAY, DAY // 2, DAY * 7 // 8)
    assert len(core.leases.take_changes()) == 1
    again = feed(core, request("request", NODE_MAC, SELECTING), now=1000.0 + 3600)
    assert reply_of(again).options[53] == b"\x05"  # ACK
    assert ip_of(again) == NODE_IP
    left = DAY - 3600
    assert times(again) == (left, left // 2, left * 7 // 8)
    assert core.leases.take_changes() == []  # nothing to persist
    entry = core.leases.for_mac(NODE_MAC)
    assert entry is not None and entry.expires == 1000.0 + DAY  # what the client was told


def test_past_the_threshold_the_lease_is_renewed_and_written() -> None:
    core = core_with(0.25)
    feed(core, request("request", NODE_MAC, SELECTING), now=1000.0)
    core.leases.take_changes()
    later = 1000.0 + DAY * 0.25 + 1
    renewal = feed(core, request("request", NODE_MAC, ciaddr=NODE_IP), now=later)
    assert times(renewal)[0] == DAY
    [change] = core.leases.take_changes()
    assert change.expires == later + DAY


def test_threshold_zero_renews_every_time() -> None:
    core = core_with(0.0)
    feed(core, request("request", NODE_MAC, SELECTING), now=1000.0)
    core.leases.take_changes()
    again = feed(core, request("request", NODE_MAC, SELECTING), now=1001.0)
    assert times(again)[0] == DAY
    [change] = core.leases.take_changes()
    assert change.expires == 1001.0 + DAY


def test_a_new_client_id_or_hostname_is_written() -> None:
    core = core_with(0.25)
    feed(core, request("request", NODE_MAC, SELECTING), now=1000.0)
    core.leases.take_changes()
    named = feed(core, request("request", NODE_MAC, [*SELECTING, ("hostname", b"n1")]), now=1010.0)
    assert times(named)[0] == DAY
    [change] = core.leases.take_changes()
    assert change.hostname == "n1"
    same = feed(core, request("request", NODE_MAC, [*SELECTING, ("hostname", b"n1")]), now=1020.0)
    assert times(same)[0] == DAY - 60  # 10 s gone: told in whole minutes, rounded down
    assert core.leases.take_changes() == []


def test_the_time_left_is_told_in_whole_minutes_rounded_down() -> None:
    core = core_with(0.25)
    feed(core, request("request", NODE_MAC, SELECTING), now=1000.0)
    core.leases.take_changes()
    told = [
        times(feed(core, request("request", NODE_MAC, SELECTING), now=1000.0 + gone))[0]
        for gone in (1, 59, 60, 61, 119)
    ]
    assert told == [DAY - 60, DAY - 60, DAY - 60, DAY - 120, DAY - 120]
    assert core.leases.take_changes() == []  # never more than is left, nothing rewritten


def test_a_lease_restored_from_the_store_is_honoured_with_its_time_left() -> None:
    stored = Lease(IP(NODE_IP), NODE_MAC, "bound", 1000.0 + DAY, None, None)
    cfg = config()
    core = DhcpCore(core_settings(cfg, PLAN, http_port=8080), RESERVATIONS, [stored])
    ack = feed(core, request("request", NODE_MAC, ciaddr=NODE_IP), now=1000.0 + 600)
    assert times(ack)[0] == DAY - 600
    assert core.leases.take_changes() == []


def test_a_lease_longer_than_the_setting_now_is_renewed_to_the_setting() -> None:
    stored = Lease(IP("10.99.0.200"), UNKNOWN_MAC, "bound", 1000.0 + DAY, None, None)
    core = DhcpCore(
        core_settings(config("pool"), PLAN, http_port=8080), RESERVATIONS, [stored]
    )  # pool_lease_time 600: the stored day-long lease predates the setting
    ack = feed(core, request("request", UNKNOWN_MAC, ciaddr="10.99.0.200"), now=1000.0)
    assert times(ack)[0] == 600
    [change] = core.leases.take_changes()
    assert change.expires == 1600.0


def ip_of(outcome) -> str:  # type: ignore[no-untyped-def]
    return str(IP(reply_of(outcome).yiaddr))
