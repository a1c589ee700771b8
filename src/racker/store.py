"""racker's durable state: one SQLite database in the state directory (layer 2).

WAL mode and a busy timeout let ``racker serve`` and other racker commands use it at the same
time. ``racker serve`` writes through a ``StoreWriter``: a thread with its own connection, so no
commit (and no fsync of a WAL checkpoint) runs on the event loop's thread.

The schema carries a version (``PRAGMA user_version``); ``MIGRATIONS[i]`` takes it from version
``i`` to ``i + 1``, and a database newer than this racker is refused, not damaged.

``racker.store_writer.StoreWriter`` runs this module's write methods on a thread of its own.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import ipaddress
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from racker.errors import StateError
from racker.events import Event
from racker.model import AddressKind, Inventory, NetworkPlan, NodeState
from racker.rack.allocation import Allocation, allocate, wanted_macs

log = logging.getLogger("racker.store")

DB_NAME = "racker.db"
_OPEN_BUSY_SECONDS = 10.0  # like the connection's busy timeout

MIGRATIONS: list[str] = [
    # 0 -> 1: the first schema.
    """
    CREATE TABLE allocations (
        mac TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('node', 'bmc')),
        address TEXT NOT NULL UNIQUE,
        last_wanted REAL NOT NULL
    );
    CREATE TABLE leases (
        address TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        state TEXT NOT NULL,
        expires REAL NOT NULL,
        client_id BLOB,
        hostname TEXT,
        updated REAL NOT NULL
    );
    CREATE INDEX leases_mac ON leases (mac);
    CREATE TABLE node_state (
        mac TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        since REAL NOT NULL,
        attempt INTEGER NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT '',
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        mac TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX events_mac ON events (mac, id);
    """,
    # 1 -> 2: which protocol each BMC answered (bmc.driver auto), by its host[:port].
    """
    CREATE TABLE bmc_protocols (
        bmc TEXT PRIMARY KEY,
        protocol TEXT NOT NULL CHECK (protocol IN ('redfish', 'ipmi')),
        seen REAL NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class Lease:
    """A DHCP lease as persisted. ``state``: offered, bound, declined, released."""

    address: ipaddress.IPv4Address
    mac: str
    state: str
    expires: float
    client_id: bytes | None = None
    hostname: str | None = None


# A lease as the leases table stores it: (dotted address, mac, state, expires, client_id,
# hostname).
LeaseRow = tuple[str, str, str, float, bytes | None, str | None]


Synchronous = Literal["NORMAL", "FULL"]
T = TypeVar("T")


class Store:
    """The SQLite store. One instance per thread: its connection is not shared."""

    def __init__(self, path: Path, synchronous: Synchronous = "NORMAL") -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise StateError(f"cannot open state database {path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        # Processes opening a fresh database together (racker serve and racker bootstrap on a
        # new state directory) can get SQLITE_BUSY from the switch to WAL without SQLite's busy
        # timeout applying; that is worth a few more tries, any other error is not.
        deadline = time.monotonic() + _OPEN_BUSY_SECONDS
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL: a commit survives racker being killed (it is in the WAL file), a power
                # loss may take the last commits; FULL: the WAL is fsynced at every commit.
                self._db.execute(f"PRAGMA synchronous={synchronous}")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._migrate()
                return
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) and time.monotonic() < deadline:
                    time.sleep(0.02)
                    continue
                error: sqlite3.Error = exc
            except sqlite3.Error as exc:
                error = exc
            self._db.close()
            raise StateError(
                f"state database {path} is unusable: {error}",
                "move it aside to start with empty state",
            ) from None

    @classmethod
    def open(cls, state_dir: Path) -> Store:
        """Open (creating if needed) the store in ``state_dir`` (created 0700)."""
        try:
            state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StateError(
                f"cannot create state directory {state_dir}: {exc.strerror}",
                "pass --state-dir DIR or run as root",
            ) from None
        path = state_dir / DB_NAME
        fresh = not path.exists()
        store = cls(path)
        if fresh:
            os.chmod(path, 0o600)
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers from other processes wait, not fail."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        if self._checked_version() == SCHEMA_VERSION:
            return  # the common case: no write lock taken just to open the store
        while True:
            with self.transaction() as db:
                # Read again under the write lock: another process (racker serve and racker
                # bootstrap starting on a fresh state directory) may have migrated meanwhile.
                version = self._checked_version()
                if version == SCHEMA_VERSION:
                    return
                # executescript would COMMIT our transaction; run statements one by one.
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")

    def _checked_version(self) -> int:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state database {self.path} has schema version {version}, newer than this "
                f"racker understands ({SCHEMA_VERSION})",
                "run the racker version that wrote it, or upgrade racker",
            )
        return version

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # -- allocations -------------------------------------------------------------------

    def allocations(self) -> dict[str, Allocation]:
        rows = self._db.execute("SELECT mac, kind, address, last_wanted FROM allocations")
        return {
            r["mac"]: Allocation(
                r["mac"],
                AddressKind(r["kind"]),
                ipaddress.IPv4Address(r["address"]),
                r["last_wanted"],
            )
            for r in rows
        }

    def sync_allocations(
        self, inventory: Inventory, plan: NetworkPlan, now: float | None = None
    ) -> dict[str, Allocation]:
        """Give every MAC of the inventory its stable address; return the whole table."""
        now = time.time() if now is None else now
        with self.transaction() as db:
            existing = self.allocations()
            table = allocate(existing, wanted_macs(inventory), plan, now)
            db.execute("DELETE FROM allocations")
            db.executemany(
                "INSERT INTO allocations (mac, kind, address, last_wanted) VALUES (?, ?, ?, ?)",
                [(a.mac, a.kind.value, str(a.address), a.last_wanted) for a in table.values()],
            )
        return table

    # -- leases ------------------------------------------------------------------------

    def leases(self) -> list[Lease]:
        rows = self._db.execute(
            "SELECT address, mac, state, expires, client_id, hostname FROM leases"
        )
        return [
            Lease(
                ipaddress.IPv4Address(r["address"]),
                r["mac"],
                r["state"],
                r["expires"],
                r["client_id"],
                r["hostname"],
            )
            for r in rows
        ]

    def save_leases(self, leases: Iterable[Lease], now: float | None = None) -> None:
        """Upsert many leases in one transaction."""
        self.save_lease_rows(
            [(str(x.address), x.mac, x.state, x.expires, x.client_id, x.hostname) for x in leases],
            now,
        )

    def save_lease_rows(self, rows: Iterable[LeaseRow], now: float | None = None) -> None:
        """``save_leases`` for the DHCP server's write-behind batches: rows of (dotted address,
        mac, state, expires, client_id, hostname), no ``Lease`` objects to build per lease."""
        now = time.time() if now is None else now
        stamped = [(*row, now) for row in rows]
        if not stamped:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO leases (address, mac, state, expires, client_id, hostname, updated)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (address) DO UPDATE SET mac=excluded.mac, state=excluded.state,"
                " expires=excluded.expires, client_id=excluded.client_id,"
                " hostname=excluded.hostname, updated=excluded.updated",
                stamped,
            )

    def commit_lease_rows(
        self, rows: list[LeaseRow], now: float
    ) -> concurrent.futures.Future[None]:
        """``save_lease_rows`` now, on this thread, as the DHCP server's lease sink asks: the
        future returned is done (``StoreWriter.commit_lease_rows`` is the one off the loop)."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        try:
            self.save_lease_rows(rows, now)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)
        return done

    def delete_leases(self, addresses: Iterable[ipaddress.IPv4Address]) -> None:
        with self.transaction() as db:
            db.executemany("DELETE FROM leases WHERE address = ?", [(str(a),) for a in addresses])

    # -- node provisioning state -------------------------------------------------------

    def node_states(self) -> dict[str, NodeState]:
        rows = self._db.execute("SELECT mac, state, since, attempt, reason, data FROM node_state")
        return {
            r["mac"]: NodeState(
                r["mac"], r["state"], r["since"], r["attempt"], r["reason"], json.loads(r["data"])
            )
            for r in rows
        }

    def set_node_state(self, state: NodeState) -> None:
        self.set_node_states([state])

    def set_node_states(self, states: Iterable[NodeState], events: Iterable[Event] = ()) -> None:
        """Node states, then events, in one transaction (the orchestrator's batches)."""
        rows = [(s.mac, s.state, s.since, s.attempt, s.reason, json.dumps(s.data or {}))
                for s in states]  # fmt: skip
        events = list(events)
        if not rows and not events:
            return
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO node_state (mac, state, since, attempt, reason, data)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (mac) DO UPDATE SET state=excluded.state,"
                " since=excluded.since, attempt=excluded.attempt, reason=excluded.reason,"
                " data=excluded.data",
                rows,
            )
            _insert_events(db, events)

    # -- BMC protocols (bmc.driver auto) ------------------------------------------------

    def bmc_protocols(self) -> dict[str, str]:
        """{BMC host[:port]: "redfish" or "ipmi"}, as the auto power driver found them."""
        rows = self._db.execute("SELECT bmc, protocol FROM bmc_protocols")
        return {r["bmc"]: r["protocol"] for r in rows}

    def set_bmc_protocol(self, bmc: str, protocol: str | None, now: float | None = None) -> None:
        """Remember ``bmc``'s protocol; ``None`` forgets it (the BMC stopped answering it)."""
        with self.transaction() as db:
            if protocol is None:
                db.execute("DELETE FROM bmc_protocols WHERE bmc = ?", (bmc,))
                return
            db.execute(
                "INSERT INTO bmc_protocols (bmc, protocol, seen) VALUES (?, ?, ?)"
                " ON CONFLICT (bmc) DO UPDATE SET protocol=excluded.protocol, seen=excluded.seen",
                (bmc, protocol, time.time() if now is None else now),
            )

    # -- event log ---------------------------------------------------------------------

    def append_events(self, events: Iterable[Event]) -> None:
        events = list(events)
        if events:
            with self.transaction() as db:
                _insert_events(db, events)

    def events_after(self, last_id: int, limit: int = 1000) -> list[tuple[int, dict[str, Any]]]:
        """Events with an id above ``last_id``, oldest first, with their ids (for tailing the
        log another racker process writes, e.g. bootstrap following a running serve)."""
        rows = self._db.execute(
            "SELECT id, data FROM events WHERE id > ? ORDER BY id LIMIT ?", (last_id, limit)
        )
        return [(r["id"], json.loads(r["data"])) for r in rows]

    def prune_events(self, keep: int) -> int:
        """Keep only the newest ``keep`` events (a long-running serve logs every DHCP, TFTP
        and HTTP exchange); returns how many were deleted."""
        with self.transaction() as db:
            cursor = db.execute(
                "DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (keep,)
            )
        return cursor.rowcount

    def last_event_id(self) -> int:
        row = self._db.execute("SELECT MAX(id) FROM events").fetchone()
        return int(row[0] or 0)

    def events_of_kind(self, kind: str, since: float, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` events of ``kind`` since ``since``, oldest first (a scan: for
        commands like ``racker status``, not for a hot path)."""
        rows = self._db.execute(
            "SELECT data FROM events WHERE kind = ? AND ts >= ? ORDER BY id DESC LIMIT ?",
            (kind, since, limit),
        )
        return [json.loads(r["data"]) for r in reversed(rows.fetchall())]

    def events(self, mac: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` events (for one MAC when given), oldest first."""
        if mac is None:
            rows = self._db.execute("SELECT data FROM events ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.execute(
                "SELECT data FROM events WHERE mac = ? ORDER BY id DESC LIMIT ?", (mac, limit)
            )
        return [json.loads(r["data"]) for r in reversed(rows.fetchall())]


def _insert_events(db: sqlite3.Connection, events: Iterable[Event]) -> None:
    db.executemany(
        "INSERT INTO events (ts, source, kind, mac, data) VALUES (?, ?, ?, ?, ?)",
        [(e.ts, e.source, e.kind, e.mac, json.dumps(e.to_dict())) for e in events],
    )
