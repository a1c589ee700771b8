"""Stable addresses: adding, removing or reordering rows never moves anyone else."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racker.model import AddressKind, AddressRange, Inventory, NetworkPlan, Node
from racker.rack.allocation import RangeExhausted, allocate, wanted_macs
from racker.store import Store

PLAN = NetworkPlan(
    subnet=ipaddress.IPv4Network("10.99.0.0/24"),
    server=ipaddress.IPv4Address("10.99.0.1"),
    nodes=AddressRange.parse("10.99.0.64-10.99.0.127"),
    bmcs=AddressRange.parse("10.99.0.128-10.99.0.191"),
)


def node(i: int, line: int = 0) -> Node:
    return Node(
        line=line or i + 2,
        index=i + 1,
        primary_mac=f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
        bmc_mac=f"52:54:00:01:{i // 256:02x}:{i % 256:02x}",
        secondary_mac=None,
        node_type="red",
    )


def inventory(ids: list[int]) -> Inventory:
    return Inventory("nodes.csv", tuple(node(i, line) for line, i in enumerate(ids, start=2)))


def test_first_allocation_fills_ranges_in_file_order() -> None:
    table = allocate({}, wanted_macs(inventory([0, 1])), PLAN, now=1.0)
    assert str(table[node(0).primary_mac].address) == "10.99.0.64"
    assert str(table[node(1).primary_mac].address) == "10.99.0.65"
    assert str(table[node(0).bmc_mac].address) == "10.99.0.128"
    assert table[node(1).bmc_mac].kind is AddressKind.BMC


# Each step is a new version of nodes.csv: some rows removed, some added, all shuffled.
steps = st.lists(
    st.lists(st.integers(min_value=0, max_value=40), unique=True, max_size=30),
    min_size=2,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(steps=steps, seed=st.randoms(use_true_random=False))
def test_edits_never_move_another_node(steps: list[list[int]], seed: object) -> None:
    table: dict = {}
    for now, ids in enumerate(steps, start=1):
        seed.shuffle(ids)  # type: ignore[attr-defined]
        before = {mac: a.address for mac, a in table.items()}
        table = allocate(table, wanted_macs(inventory(ids)), PLAN, now=float(now))
        # Nobody who had an address and is still listed moved.
        for i in ids:
            for mac in (node(i).primary_mac, node(i).bmc_mac):
                if mac in before:
                    assert table[mac].address == before[mac]
        # Addresses are unique and inside their ranges.
        addresses = [a.address for a in table.values()]
        assert len(addresses) == len(set(addresses))
        for a in table.values():
            assert a.address in PLAN.range_for(a.kind)
            assert a.address != PLAN.server


def test_removed_row_keeps_its_address_for_when_it_comes_back() -> None:
    table = allocate({}, wanted_macs(inventory([0, 1, 2])), PLAN, now=1.0)
    gone = table[node(1).primary_mac].address
    table = allocate(table, wanted_macs(inventory([0, 2, 3])), PLAN, now=2.0)
    assert table[node(3).primary_mac].address != gone
    table = allocate(table, wanted_macs(inventory([0, 1, 2, 3])), PLAN, now=3.0)
    assert table[node(1).primary_mac].address == gone


def test_full_range_reuses_the_longest_gone_address_then_fails() -> None:
    small = NetworkPlan(
        subnet=PLAN.subnet,
        server=PLAN.server,
        nodes=AddressRange.parse("10.99.0.64-10.99.0.65"),
        bmcs=AddressRange.parse("10.99.0.128-10.99.0.129"),
    )
    table = allocate({}, wanted_macs(inventory([0, 1])), small, now=1.0)
    table = allocate(table, wanted_macs(inventory([1])), small, now=2.0)
    table = allocate(table, wanted_macs(inventory([1, 2])), small, now=3.0)
    assert table[node(2).primary_mac].address == ipaddress.IPv4Address("10.99.0.64")
    with pytest.raises(RangeExhausted) as info:
        allocate(table, wanted_macs(inventory([1, 2, 3])), small, now=4.0)
    assert "network.nodes" in (info.value.hint or "")


def test_store_persists_allocations_across_reopen(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        first = store.sync_allocations(inventory([0, 1, 2]), PLAN, now=1.0)
    with Store.open(tmp_path) as store:
        again = store.sync_allocations(inventory([2, 0, 1, 5]), PLAN, now=2.0)
    for i in (0, 1, 2):
        assert again[node(i).primary_mac].address == first[node(i).primary_mac].address
