"""The in-memory lease table of the DHCP core (layer 1: pure; time is a parameter).

Addresses are plain ``int``s here (cheap to hash and compare on the hot path). Every change
worth keeping (bound, released, declined) is queued; the server takes the queue in batches and
writes it to SQLite (``racker.store``, layer 2, which this module must not import: it is seeded
from anything shaped like ``store.Lease`` and hands back its own ``LeaseEntry`` copies).
Offers are not persisted: a client whose offer is lost by a restart simply sends DISCOVER again.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

OFFERED = "offered"
BOUND = "bound"
RELEASED = "released"
DECLINED = "declined"


class PersistedLease(Protocol):
    """What a persisted lease looks like (``racker.store.Lease``)."""

    @property
    def address(self) -> ipaddress.IPv4Address: ...
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
    state: str
    expires: float
    client_id: bytes | None = None
    hostname: str | None = None


class LeaseTable:
    def __init__(self, leases: Iterable[PersistedLease] = (), reserved: Iterable[int] = ()) -> None:
        self._by_mac: dict[str, LeaseEntry] = {}
        self._by_addr: dict[int, LeaseEntry] = {}
        self._reserved = frozenset(reserved)
        self._cursor: dict[tuple[int, int], int] = {}
        self._dirty: dict[int, LeaseEntry] = {}
        for lease in leases:
            if lease.state not in (BOUND, DECLINED):
                continue
            entry = LeaseEntry(
                int(lease.address),
                lease.mac,
                lease.state,
                lease.expires,
                lease.client_id,
                lease.hostname,
            )
            self._by_addr[entry.address] = entry
            if lease.state == BOUND:
                self._by_mac[lease.mac] = entry

    def for_mac(self, mac: str) -> LeaseEntry | None:
        return self._by_mac.get(mac)

    def at(self, address: int) -> LeaseEntry | None:
        return self._by_addr.get(address)

    def is_free_for(self, address: int, mac: str, now: float) -> bool:
        """Nobody else holds ``address`` (an expired lease or quarantine holds nothing)."""
        entry = self._by_addr.get(address)
        if entry is None or entry.expires <= now or entry.state == RELEASED:
            return True
        return entry.mac == mac and entry.state != DECLINED

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
        if entry is not None and entry.address == address and entry.state == BOUND:
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
        entry = self._by_mac.pop(mac, None)
        if entry is None:
            return False
        was_bound = entry.state == BOUND
        entry.state, entry.expires = RELEASED, now
        if was_bound:
            self._dirty[entry.address] = entry
        return True

    def decline(self, mac: str, address: int, until: float) -> None:
        """RFC 2131 §4.3.3: the client found ``address`` in use; keep it out of the pool."""
        entry = self._by_mac.get(mac)
        if entry is not None and entry.address == address:
            del self._by_mac[mac]
        quarantine = LeaseEntry(address, mac, DECLINED, until)
        self._by_addr[address] = quarantine
        self._dirty[address] = quarantine

    def take_changes(self) -> list[LeaseEntry]:
        """Copies of the entries changed since the last call (the latest state of each)."""
        if not self._dirty:
            return []
        # Positional copies: dataclasses.replace() costs ~1.5 µs per entry (it inspects the
        # fields each call), and a busy server takes hundreds of changes per flush.
        changes = [
            LeaseEntry(e.address, e.mac, e.state, e.expires, e.client_id, e.hostname)
            for e in self._dirty.values()
        ]
        self._dirty = {}
        return changes

    @property
    def pending(self) -> int:
        return len(self._dirty)

    def _take(
        self,
        mac: str,
        address: int,
        state: str,
        expires: float,
        *,
        client_id: bytes | None = None,
        hostname: str | None = None,
        persist: bool,
    ) -> None:
        previous = self._by_mac.get(mac)
        moved = previous is not None and previous.address != address
        if moved and previous is not None and self._by_addr.get(previous.address) is previous:
            # The client moves: its old address is free again (persist that if it was bound).
            if previous.state == BOUND:
                previous.state = RELEASED
                self._dirty[previous.address] = previous
            else:
                del self._by_addr[previous.address]
        holder = self._by_addr.get(address)
        if holder is not None and holder.mac != mac and self._by_mac.get(holder.mac) is holder:
            del self._by_mac[holder.mac]  # an expired lease of another client is reused
        if previous is not None and previous.address == address:
            entry = previous
            entry.state, entry.expires = state, expires
            if client_id is not None:
                entry.client_id = client_id
            if hostname is not None:
                entry.hostname = hostname
        else:
            entry = LeaseEntry(address, mac, state, expires, client_id, hostname)
        self._by_mac[mac] = entry
        self._by_addr[address] = entry
        if persist:
            self._dirty[address] = entry
