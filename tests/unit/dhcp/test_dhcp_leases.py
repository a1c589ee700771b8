"""A lease's life is one table (``leases.TRANSITIONS``): every legal move, the verbs of
``LeaseTable`` that make them, and illegal moves that raise and change nothing."""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
from collections.abc import Callable

import pytest

from racker.dhcp.leases import (
    TRANSITIONS,
    IllegalLeaseTransition,
    LeaseEntry,
    LeaseState,
    LeaseTable,
)
from racker.store import Lease

OFFERED, BOUND, RELEASED, DECLINED = (
    LeaseState.OFFERED,
    LeaseState.BOUND,
    LeaseState.RELEASED,
    LeaseState.DECLINED,
)
MAC = "52:54:00:aa:00:01"
OTHER = "52:54:00:aa:00:02"
A, B = 100, 101  # addresses

# Written out here, not read from TRANSITIONS: the table under test must match it.
LEGAL = {
    (None, OFFERED),
    (None, BOUND),
    (None, DECLINED),
    (OFFERED, OFFERED),
    (OFFERED, BOUND),
    (OFFERED, RELEASED),
    (OFFERED, DECLINED),
    (BOUND, BOUND),
    (BOUND, RELEASED),
    (BOUND, DECLINED),
}
EVERY_MOVE = list(itertools.product([None, *LeaseState], LeaseState))


def test_the_state_values_are_the_stored_strings() -> None:
    assert {s.value for s in LeaseState} == {"offered", "bound", "released", "declined"}
    assert LeaseState("bound") is BOUND


def test_the_table_is_exactly_the_legal_moves() -> None:
    assert set(TRANSITIONS) == LEGAL
    assert all(TRANSITIONS.values())  # each says why


@pytest.mark.parametrize(("source", "target"), EVERY_MOVE)
def test_a_move_is_made_if_the_table_lists_it_else_it_raises_and_changes_nothing(
    source: LeaseState | None, target: LeaseState
) -> None:
    if source is None:
        if (source, target) in LEGAL:
            made = LeaseEntry.start(A, MAC, target, 50.0)
            assert (made.state, made.expires) == (target, 50.0)
        else:
            with pytest.raises(IllegalLeaseTransition, match="cannot start"):
                LeaseEntry.start(A, MAC, target, 50.0)
        return
    entry = LeaseEntry(A, MAC, source, 10.0, b"\x01id", "n1")
    before = dataclasses.replace(entry)
    if (source, target) in LEGAL:
        entry.move(target, 50.0)
        assert entry == dataclasses.replace(before, state=target, expires=50.0)
    else:
        with pytest.raises(IllegalLeaseTransition, match=f"from {source} to {target}"):
            entry.move(target, 50.0)
        assert entry == before


def offer(table: LeaseTable) -> None:
    table.offer(MAC, A, 0.0, 60.0)


def bind(table: LeaseTable) -> None:
    table.bind(MAC, A, 900.0, None, None)


def release(table: LeaseTable) -> None:
    table.release(MAC, 5.0)


def decline(table: LeaseTable) -> None:
    table.decline(MAC, A, 600.0)


def move_on(table: LeaseTable) -> None:
    table.offer(MAC, B, 5.0, 60.0)  # the client takes another address


Verb = Callable[[LeaseTable], None]

# (the move, the verbs of LeaseTable that make it, in order), seen in the record of address A
VERBS: list[tuple[tuple[LeaseState | None, LeaseState], list[Verb]]] = [
    ((None, OFFERED), [offer]),
    ((None, BOUND), [bind]),
    ((None, DECLINED), [decline]),
    ((OFFERED, OFFERED), [offer, offer]),
    ((OFFERED, BOUND), [offer, bind]),
    ((OFFERED, RELEASED), [offer, release]),
    ((OFFERED, DECLINED), [offer, decline]),
    ((BOUND, BOUND), [bind, bind]),
    ((BOUND, RELEASED), [bind, release]),
    ((BOUND, RELEASED), [bind, move_on]),
    ((BOUND, DECLINED), [bind, decline]),
]


def test_every_legal_move_is_made_by_a_verb_of_the_table() -> None:
    assert {move for move, _verbs in VERBS} == LEGAL


@pytest.mark.parametrize(("move", "verbs"), VERBS)
def test_the_verbs_move_the_record_of_the_address(
    move: tuple[LeaseState | None, LeaseState], verbs: list[Verb]
) -> None:
    source, target = move
    table = LeaseTable()
    for verb in verbs[:-1]:
        verb(table)
    before = table.at(A)
    assert (before.state if before else None) is source
    verbs[-1](table)
    after = table.at(A)
    assert after is not None and after.state is target
    if source is not None:
        assert after is before  # moved, not replaced by a new record


def test_a_move_changes_the_record_itself() -> None:
    table = LeaseTable()
    table.offer(MAC, A, 0.0, 60.0)
    offered = table.for_mac(MAC)
    table.bind(MAC, A, 900.0, b"\x01id", "n1")
    assert table.for_mac(MAC) is offered
    assert offered is not None and (offered.state, offered.expires) == (BOUND, 900.0)
    table.decline(MAC, A, 600.0)
    assert table.at(A) is offered
    assert table.for_mac(MAC) is None
    # A quarantine keeps nothing of the client's lease but its MAC (as the store has it).
    assert (offered.state, offered.expires, offered.client_id, offered.hostname) == (
        DECLINED,
        600.0,
        None,
        None,
    )


def _snapshot(table: LeaseTable) -> tuple[object, ...]:
    entry = table.for_mac(MAC)
    return (
        dataclasses.replace(entry) if entry else None,
        [dataclasses.replace(e) for e in (table.at(A), table.at(B)) if e],
        table.pending,
    )


# A bug elsewhere left a record in a state the verb cannot move it from.
ILLEGAL: list[tuple[LeaseState, Verb]] = [
    (RELEASED, bind),
    (RELEASED, offer),
    (RELEASED, release),
    (RELEASED, decline),
    (DECLINED, bind),
    (DECLINED, offer),
    (DECLINED, release),
]


@pytest.mark.parametrize(("stuck", "verb"), ILLEGAL)
def test_an_illegal_move_raises_and_changes_nothing(stuck: LeaseState, verb: Verb) -> None:
    table = LeaseTable()
    table.bind(MAC, A, 900.0, b"\x01id", "n1")
    table.take_changes()
    entry = table.for_mac(MAC)
    assert entry is not None
    entry.state = stuck
    before = _snapshot(table)
    with pytest.raises(IllegalLeaseTransition):
        verb(table)
    assert _snapshot(table) == before


def test_an_offer_to_a_bound_client_is_no_move() -> None:
    # RFC 2131 §4.3.1: a bound client's DISCOVER is offered its address; the lease stands.
    table = LeaseTable()
    table.bind(MAC, A, 900.0, None, None)
    table.offer(MAC, A, 5.0, 60.0)
    entry = table.for_mac(MAC)
    assert entry is not None and (entry.state, entry.expires) == (BOUND, 900.0)


def test_stored_state_strings_load_and_only_bound_and_declined_hold_an_address() -> None:
    ip = ipaddress.IPv4Address
    stored = [
        Lease(ip("10.0.0.1"), MAC, "bound", 900.0, b"\x01id", "n1"),
        Lease(ip("10.0.0.2"), OTHER, "declined", 600.0),
        Lease(ip("10.0.0.3"), "52:54:00:aa:00:03", "offered", 60.0),
        Lease(ip("10.0.0.4"), "52:54:00:aa:00:04", "released", 5.0),
        Lease(ip("10.0.0.5"), "52:54:00:aa:00:05", "bogus", 5.0),
    ]
    table = LeaseTable(stored)
    bound, declined = table.at(int(ip("10.0.0.1"))), table.at(int(ip("10.0.0.2")))
    assert bound is not None and bound.state is BOUND and table.for_mac(MAC) is bound
    assert (bound.client_id, bound.hostname) == (b"\x01id", "n1")
    assert declined is not None and declined.state is DECLINED
    assert table.for_mac(OTHER) is None  # a quarantine is no client's lease
    assert [table.at(int(ip(f"10.0.0.{i}"))) for i in (3, 4, 5)] == [None, None, None]
    assert table.pending == 0


def test_a_table_restores_from_another_tables_held_leases() -> None:
    table = LeaseTable()
    table.bind(MAC, A, 900.0, b"\x01id", "n1")
    table.decline(OTHER, B, 600.0)
    table.offer("52:54:00:aa:00:03", 102, 0.0, 60.0)  # an offer is not carried over
    again = LeaseTable(table.held())
    assert again.held() == table.held()
    assert [e.address for e in again.held()] == [A, B]
    assert again.for_mac(MAC) == table.for_mac(MAC)
