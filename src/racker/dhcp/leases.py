"""The in-memory lease table of the DHCP core (layer 1: pure; time is a parameter).

Addresses are plain ``int``s here (cheap to hash and compare on the hot path). Every change
worth keeping (bound, released, declined) is queued; the server takes the queue in batches and
writes it to SQLite (``racker.store``, layer 2, which this module must not import: it is seeded
from anything shaped like ``store.Lease`` and hands back its own ``LeaseEntry`` copies).
Offers are not persisted: a client whose offer is lost by a restart simply sends DISCOVER again.
A change is *unsettled* from when it is made until the server says it is committed
(``settle``): a reply about an unsettled address waits for that commit (no ACK before its lease
is stored), and an address released by one client is not free for another before its release
is stored (a crash in between would bring back the old binding next to the new one).

A lease's life is the one table ``TRANSITIONS``: a lease starts as an offer, a binding or a
quarantine, and ends released or declined (the address's next lease is a new record). Every
change of state goes through it; a move it does not list is racker's own bug and raises
``IllegalLeaseTransition`` without changing anything.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from racker.errors import RackerError


class LeaseState(enum.StrEnum):
    """A lease's state. The values are what the store's ``leases.state`` column holds."""

    OFFERED = "offered"  # held for the client between its DISCOVER and REQUEST
    BOUND = "bound"
    RELEASED = "released"
    DECLINED = "declined"  # the address is quarantined: another host answers for it


OFFERED = LeaseState.OFFERED
BOUND = LeaseState.BOUND
RELEASED = LeaseState.RELEASED
DECLINED = LeaseState.DECLINED

# (from, to): why. ``None`` is "no lease yet": the move makes a new record for the address.
TRANSITIONS: dict[tuple[LeaseState | None, LeaseState], str] = {
    (None, OFFERED): "DISCOVER: an address is offered and held for the client (RFC 2131 §4.3.1)",
    (None, BOUND): "REQUEST with no offer of ours: INIT-REBOOT, RENEWING (RFC 2131 §4.3.2)",
    (None, DECLINED): "DECLINE of an address the client held no record of (RFC 2131 §4.3.3)",
    (OFFERED, OFFERED): "DISCOVER again: the offer is held longer",
    (OFFERED, BOUND): "REQUEST for the offered address: ACK (RFC 2131 §4.3.2)",
    (OFFERED, RELEASED): "the client chose another server's offer (RFC 2131 §4.3.2), or RELEASE",
    (OFFERED, DECLINED): "DECLINE of the offered address (RFC 2131 §4.3.3)",
    (BOUND, BOUND): "REQUEST again (renewing, rebinding, rebooting): the lease is extended",
    (BOUND, RELEASED): "RELEASE (RFC 2131 §4.3.4), or the client moved to another address",
    (BOUND, DECLINED): "DECLINE after the ACK: another host answers for it (RFC 2131 §4.3.3)",
}

# What a store's rows may hold, as states; a lease in any other state is not restored (an offer
# or a released lease holds nothing).
_RESTORED = {BOUND.value: BOUND, DECLINED.value: DECLINED}


class IllegalLeaseTransition(RackerError):
    """A lease was asked to move in a way ``TRANSITIONS`` does not list: racker's own bug."""


class PersistedLease(Protocol):
    """What a persisted lease looks like (``racker.store.Lease``; a ``LeaseEntry`` also fits)."""

    @property
    def address(self) -> ipaddress.IPv4Address | int: ...
    @property
    def mac(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def expires(self) -> float: ...
    @property
    def client_id(self) -> bytes | None: ...
    @property
    def hostname(self) -> str | None: ...


@dataclass(slots=True)
class LeaseEntry:
    address: int
    mac: str
    state: LeaseState
    expires: float
    client_id: bytes | None = None
    hostname: str | None = None

    @classmethod
    def start(
        cls,
        address: int,
        mac: str,
        state: LeaseState,
        expires: float,
        client_id: bytes | None = None,
        hostname: str | None = None,
    ) -> LeaseEntry:
        """A new lease record in ``state`` (a move from no lease)."""
        if (None, state) not in TRANSITIONS:
            raise IllegalLeaseTransition(f"{mac}: a lease cannot start {state}")
        return cls(address, mac, state, expires, client_id, hostname)

    def move(self, state: LeaseState, expires: float) -> None:
        """Change state (and expiry) as ``TRANSITIONS`` allows; else raise, changing nothing."""
        if (self.state, state) not in TRANSITIONS:
            raise IllegalLeaseTransition(
                f"{self.mac}: a lease cannot move from {self.state} to {state}"
            )
        self.state, self.expires = state, expires


class LeaseTable:
    def __init__(self, leases: Iterable[PersistedLease] = (), reserved: Iterable[int] = ()) -> None:
        self._by_mac: dict[str, LeaseEntry] = {}
        self._by_addr: dict[int, LeaseEntry] = {}
        self._reserved = frozenset(reserved)
        self._cursor: dict[tuple[int, int], int] = {}
        self._dirty: dict[int, LeaseEntry] = {}
        self._in_flight: dict[int, int] = {}  # address -> changes taken but not yet settled
        for lease in leases:
            state = _RESTORED.get(lease.state)
            if state is None:
                continue
            entry = LeaseEntry(
                int(lease.address),
                lease.mac,
                state,
                lease.expires,
                lease.client_id,
                lease.hostname,
            )
            self._by_addr[entry.address] = entry
            if state is BOUND:
                self._by_mac[lease.mac] = entry

    def for_mac(self, mac: str) -> LeaseEntry | None:
        return self._by_mac.get(mac)

    def at(self, address: int) -> LeaseEntry | None:
        return self._by_addr.get(address)

    def is_free_for(self, address: int, mac: str, now: float) -> bool:
        """Nobody else holds ``address`` (an expired lease or quarantine holds nothing)."""
        entry = self._by_addr.get(address)
        if entry is None:
            return True
        if entry.mac != mac and entry.state is RELEASED and self.is_unsettled(address):
            return False  # its release is not stored yet
        if entry.expires <= now or entry.state is RELEASED:
            return True
        return entry.mac == mac and entry.state is not DECLINED

    def allocate(
        self, first: int, last: int, mac: str, now: float, requested: int | None = None
    ) -> int | None:
        """An address in ``first..last`` for ``mac``: its current one, the one it asks for,
        else the next free one after the last handed out (so freed addresses rest a while)."""
        current = self._by_mac.get(mac)
        for candidate in (current.address if current else None, requested):
            if (
                candidate is not None
                and first <= candidate <= last
                and candidate not in self._reserved
                and self.is_free_for(candidate, mac, now)
            ):
                return candidate
        size = last - first + 1
        start = self._cursor.get((first, last), first)
        for step in range(size):
            candidate = first + (start - first + step) % size
            if candidate in self._reserved:
                continue
            if self.is_free_for(candidate, mac, now):
                self._cursor[(first, last)] = candidate + 1 if candidate < last else first
                return candidate
        return None

    def offer(self, mac: str, address: int, now: float, hold: float) -> None:
        entry = self._by_mac.get(mac)
        if entry is not None and entry.address == address and entry.state is BOUND:
            return  # a bound client asking again keeps its lease until it REQUESTs
        self._take(mac, address, OFFERED, now + hold, persist=False)

    def bind(
        self,
        mac: str,
        address: int,
        expires: float,
        client_id: bytes | None,
        hostname: str | None,
    ) -> None:
        self._take(
            mac, address, BOUND, expires, client_id=client_id, hostname=hostname, persist=True
        )

    def release(self, mac: str, now: float) -> bool:
        entry = self._by_mac.get(mac)
        if entry is None:
            return False
        was_bound = entry.state is BOUND
        entry.move(RELEASED, now)
        del self._by_mac[mac]
        if was_bound:  # an offer was never persisted
            self._dirty[entry.address] = entry
        return True

    def decline(self, mac: str, address: int, until: float) -> None:
        """RFC 2131 §4.3.3: the client found ``address`` in use; keep it out of the pool."""
        entry = self._by_mac.get(mac)
        held = entry is not None and entry.address == address
        if held and entry is not None and self._by_addr.get(address) is entry:
            entry.move(DECLINED, until)
            # The quarantine is the address's: the client's id and name are not kept with it.
            entry.client_id = entry.hostname = None
            quarantine = entry
        else:
            quarantine = LeaseEntry.start(address, mac, DECLINED, until)
        if held:
            del self._by_mac[mac]
        self._by_addr[address] = quarantine
        self._dirty[address] = quarantine

    def take_changes(self) -> list[LeaseEntry]:
        """Copies of the entries changed since the last call (the latest state of each)."""
        if not self._dirty:
            return []
        # Positional copies: dataclasses.replace() inspects the fields on every call, and a
        # busy server takes hundreds of changes per flush.
        changes = [
            LeaseEntry(e.address, e.mac, e.state, e.expires, e.client_id, e.hostname)
            for e in self._dirty.values()
        ]
        self._dirty = {}
        in_flight = self._in_flight
        for change in changes:
            in_flight[change.address] = in_flight.get(change.address, 0) + 1
        return changes

    def settle(self, changes: Iterable[LeaseEntry], committed: bool = True) -> None:
        """``changes`` (from ``take_changes``) are stored; or, not ``committed``, they failed
        to be and are pending again (unless the address changed since: its newer change is)."""
        in_flight = self._in_flight
        for change in changes:
            left = in_flight.get(change.address, 0) - 1
            if left > 0:
                in_flight[change.address] = left
            else:
                in_flight.pop(change.address, None)
            if not committed and change.address not in self._dirty:
                self._dirty[change.address] = self._by_addr.get(change.address, change)

    def is_unsettled(self, address: int) -> bool:
        """Has ``address`` a change not yet committed (pending, or taken and in flight)?"""
        return address in self._dirty or address in self._in_flight

    @property
    def unsettled(self) -> int:
        """How many addresses have changes not yet committed (0: nothing to wait for)."""
        return len(self._dirty) + len(self._in_flight)

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def held(self) -> list[LeaseEntry]:
        """Copies of the bound leases and quarantines: what a store restores a table from."""
        return [
            LeaseEntry(e.address, e.mac, e.state, e.expires, e.client_id, e.hostname)
            for e in self._by_addr.values()
            if e.state is BOUND or e.state is DECLINED
        ]

    def _take(
        self,
        mac: str,
        address: int,
        state: LeaseState,
        expires: float,
        *,
        client_id: bytes | None = None,
        hostname: str | None = None,
        persist: bool,
    ) -> None:
        previous = self._by_mac.get(mac)
        if previous is not None and previous.address == address:
            entry = previous
            entry.move(state, expires)  # the first change: an illegal move changes nothing
            if client_id is not None:
                entry.client_id = client_id
            if hostname is not None:
                entry.hostname = hostname
        else:
            entry = LeaseEntry.start(address, mac, state, expires, client_id, hostname)
            if previous is not None and self._by_addr.get(previous.address) is previous:
                # The client moves: its old address is free again (persisted if it was bound;
                # an offer simply lapses).
                if previous.state is BOUND:
                    previous.move(RELEASED, previous.expires)
                    self._dirty[previous.address] = previous
                else:
                    del self._by_addr[previous.address]
        holder = self._by_addr.get(address)
        if holder is not None and holder.mac != mac and self._by_mac.get(holder.mac) is holder:
            del self._by_mac[holder.mac]  # an expired lease of another client is reused
        self._by_mac[mac] = entry
        self._by_addr[address] = entry
        if persist:
            self._dirty[address] = entry
