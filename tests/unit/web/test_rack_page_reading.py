"""The rack page's reads of the store (racker.web.page.reading), against a real SQLite store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from racker.events import NodeStateEvent
from racker.store import Store
from racker.web.page import reading

MAC = "52:54:00:00:00:01"


def transition(ts: float, new: str) -> NodeStateEvent:
    return NodeStateEvent("transition", MAC, ts, node="worker-000001", old="", new=new)


def test_an_event_committed_during_a_poll_is_read_by_this_poll_or_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # racker bootstrap (another process) commits a state change while the page polls: between
    # poll's SELECT of new events and its MAX(id). The page must not step over it.
    store = Store(tmp_path / "racker.db")
    store.append_events([transition(1.0, "power-cycled")])
    after = reading.poll(store.path, 0)["last_id"]
    original = reading._last_id

    def last_id_after_a_commit(db: sqlite3.Connection) -> int:
        monkeypatch.setattr(reading, "_last_id", original)  # once
        store.append_events([transition(2.0, "dhcp-seen")])
        return original(db)

    monkeypatch.setattr(reading, "_last_id", last_id_after_a_commit)
    first = reading.poll(store.path, after)
    second = reading.poll(store.path, first["last_id"])
    seen = [e["new"] for e in first["events"] + second["events"]]
    assert seen == ["dhcp-seen"]


def test_seed_s_events_end_at_its_last_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An event committed during the seed is either in it or after its last id, never both
    # (else the next poll shows it twice).
    store = Store(tmp_path / "racker.db")
    store.append_events([transition(1.0, "power-cycled")])
    original = reading._last_id

    def last_id_then_a_commit(db: sqlite3.Connection) -> int:
        found = original(db)
        store.append_events([transition(2.0, "dhcp-seen")])
        return found

    monkeypatch.setattr(reading, "_last_id", last_id_then_a_commit)
    seeded = reading.seed(store.path)
    monkeypatch.setattr(reading, "_last_id", original)
    polled = reading.poll(store.path, seeded["last_id"])
    seen = [e["new"] for e in seeded["events"] + polled["events"]]
    assert seen == ["power-cycled", "dhcp-seen"]
