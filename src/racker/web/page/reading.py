"""The rack page's reads of the store: blocking, so always called through ``asyncio.to_thread``.

Each call opens its own read-only SQLite connection (``mode=ro``: the page can change nothing),
reads in one transaction (one snapshot) and closes it; WAL mode lets it read while
``racker serve`` and ``racker bootstrap`` write.
Every query is bounded: the newest ``limit`` events at most.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Events a timeline shows at most (newest first from the store, shown oldest first).
TIMELINE_EVENTS = 200
# At start the page looks this far back in the event log for power, BMC errors, warnings.
SEED_EVENTS = 20_000
# Sources whose events reach the page only through the store: another process writes them.
STORE_ONLY_SOURCES = ("bootstrap", "bmc")


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
    try:
        db.row_factory = sqlite3.Row
        # One read transaction: every query of a call sees the same snapshot. Without it each
        # statement sees the newest commit, and an event committed between poll's SELECT and
        # its MAX(id) would be skipped for good (and seed's events and last id disagree).
        db.execute("BEGIN")
        yield db
    finally:
        db.close()


def _states(db: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    rows = db.execute("SELECT mac, state, since, attempt, reason, data FROM node_state")
    return {
        r["mac"]: {
            "state": r["state"],
            "since": r["since"],
            "attempt": r["attempt"],
            "reason": r["reason"],
            "data": json.loads(r["data"] or "{}"),
        }
        for r in rows
    }


def _protocols(db: sqlite3.Connection) -> dict[str, str]:
    try:
        rows = db.execute("SELECT bmc, protocol FROM bmc_protocols")
        return {r["bmc"]: r["protocol"] for r in rows}
    except sqlite3.OperationalError:  # an older schema: nothing remembered
        return {}


def _last_id(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0)


def seed(path: Path, limit: int = SEED_EVENTS) -> dict[str, Any]:
    """Everything the page starts from: states, BMC protocols, the newest ``limit`` events
    (oldest first) and the event log's last id (where ``poll`` goes on from)."""
    with read_only(path) as db:
        last = _last_id(db)
        rows = db.execute(
            "SELECT data FROM events WHERE id > ? ORDER BY id", (max(0, last - limit),)
        ).fetchall()
        return {
            "states": _states(db),
            "protocols": _protocols(db),
            "events": [json.loads(r["data"]) for r in rows],
            "last_id": last,
        }


def poll(path: Path, after: int, limit: int = 1000) -> dict[str, Any]:
    """States and protocols now, and the events another process wrote since ``after`` (the
    hub delivers this process's own): the node-state changes of a ``racker bootstrap``."""
    marks = ",".join("?" * len(STORE_ONLY_SOURCES))
    with read_only(path) as db:
        rows = db.execute(
            # Only "?" placeholders are formatted in: the values are bound.
            f"SELECT id, data FROM events WHERE id > ? AND source IN ({marks})"  # noqa: S608
            " ORDER BY id LIMIT ?",
            (after, *STORE_ONLY_SOURCES, limit),
        ).fetchall()
        last = int(rows[-1]["id"]) if len(rows) == limit else _last_id(db)
        return {
            "states": _states(db),
            "protocols": _protocols(db),
            "events": [json.loads(r["data"]) for r in rows],
            "last_id": max(last, after),
        }


def timeline(path: Path, macs: list[str], limit: int = TIMELINE_EVENTS) -> list[dict[str, Any]]:
    """The newest ``limit`` events about any of ``macs`` (a node's NICs and BMC), oldest first."""
    marks = ",".join("?" * len(macs))
    with read_only(path) as db:
        rows = db.execute(
            f"SELECT data FROM events WHERE mac IN ({marks}) ORDER BY id DESC LIMIT ?",  # noqa: S608
            (*macs, limit),
        ).fetchall()
    return [json.loads(r["data"]) for r in reversed(rows)]
