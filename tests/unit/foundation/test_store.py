"""The SQLite store: schema versions, leases, node state, events, shared between processes."""

from __future__ import annotations

import ipaddress
import multiprocessing
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from racker.errors import StateError
from racker.events import DhcpEvent
from racker.model import NodeState
from racker.store import DB_NAME, MIGRATIONS, SCHEMA_VERSION, Lease, Store


def test_new_store_is_at_current_schema_in_wal_mode_and_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with Store.open(state) as store:
        assert store.schema_version == SCHEMA_VERSION
    db = sqlite3.connect(state / DB_NAME)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert stat.S_IMODE(os.stat(state / DB_NAME).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700


def test_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError) as info:
        Store.open(tmp_path)
    assert "newer" in info.value.message
    db = sqlite3.connect(tmp_path / DB_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1


def test_garbage_database_gives_a_state_error(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StateError) as info:
        Store.open(tmp_path)
    assert "move it aside" in (info.value.hint or "")


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError) as info:
        Store.open(blocker / "state")
    assert "--state-dir" in (info.value.hint or "")


def test_leases_upsert_and_delete(tmp_path: Path) -> None:
    a = ipaddress.IPv4Address("10.99.0.64")
    with Store.open(tmp_path) as store:
        store.save_leases([Lease(a, "52:54:00:00:00:01", "offered", 10.0)])
        store.save_leases([Lease(a, "52:54:00:00:00:01", "bound", 99.0, b"\x01", "n1")])
        assert store.leases() == [Lease(a, "52:54:00:00:00:01", "bound", 99.0, b"\x01", "n1")]
        store.delete_leases([a])
        assert store.leases() == []


def test_node_state_and_events_round_trip(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.set_node_state(NodeState("m1", "pxe-armed", 5.0, 1, "", {"k": 1}))
        store.set_node_state(NodeState("m1", "dhcp-seen", 6.0, 1))
        assert store.node_states()["m1"].state == "dhcp-seen"
        store.append_events(
            [
                DhcpEvent("discover", "m1", 1.0, xid=7, message="DISCOVER"),
                DhcpEvent("discover", "m2", 2.0, xid=8, message="DISCOVER"),
            ]
        )
        assert [e["xid"] for e in store.events()] == [7, 8]
        only = store.events(mac="m2")
        assert only == [
            {
                "source": "dhcp",
                "kind": "discover",
                "mac": "m2",
                "ts": 2.0,
                "xid": 8,
                "message": "DISCOVER",
                "direction": "in",
                "client_arch": None,
                "client_kind": "",
                "address": None,
                "boot_file": None,
                "reason": "",
            }
        ]


def test_node_states_and_their_events_are_one_transaction(tmp_path: Path) -> None:
    class Broken(DhcpEvent):
        def to_dict(self) -> dict[str, object]:
            raise ValueError("not serialisable")

    with Store.open(tmp_path) as store:
        store.set_node_states([])  # nothing: no transaction at all
        store.set_node_states(
            [NodeState("m1", "pending", 1.0), NodeState("m2", "bmc-ok", 2.0, 1, "", {"k": 1})],
            [DhcpEvent("discover", "m1", 1.0, xid=7)],
        )
        assert {m: s.state for m, s in store.node_states().items()} == {
            "m1": "pending",
            "m2": "bmc-ok",
        }
        assert [e["xid"] for e in store.events()] == [7]
        with pytest.raises(ValueError, match="not serialisable"):
            store.set_node_states([NodeState("m1", "pxe-armed", 3.0)], [Broken("x", "m1", 3.0)])
        # The failed event took its state with it: neither is stored.
        assert store.node_states()["m1"].state == "pending"
        assert len(store.events()) == 1


def _writer(path: str, start: int, count: int) -> None:
    with Store.open(Path(path)) as store:
        for i in range(start, start + count):
            store.save_leases(
                [Lease(ipaddress.IPv4Address(0x0A630000 + i), f"m{i}", "bound", float(i))]
            )


def test_two_processes_write_at_the_same_time(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), k * 200, 200)) for k in range(2)]
    for p in procs:
        p.start()
    with Store.open(tmp_path) as store:  # a reader in this process meanwhile
        store.node_states()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with Store.open(tmp_path) as store:
        assert len(store.leases()) == 400


def test_failed_transaction_rolls_back(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        with pytest.raises(RuntimeError), store.transaction() as db:
            db.execute("INSERT INTO leases VALUES ('10.0.0.1', 'm', 'bound', 1, NULL, NULL, 1)")
            raise RuntimeError("boom")
        assert store.leases() == []


def test_prune_keeps_the_newest_events(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        store.append_events([DhcpEvent("ack", "m", float(i), xid=i) for i in range(10)])
        assert store.prune_events(keep=4) == 6
        assert [e["xid"] for e in store.events()] == [6, 7, 8, 9]
        assert store.prune_events(keep=4) == 0


def test_a_store_migrated_by_another_process_meanwhile_opens_cleanly(tmp_path: Path) -> None:
    # Process A reads schema version 0 of a fresh database, then waits for the write lock that
    # process B holds while B migrates it. A must not run the migrations again.
    path = tmp_path / DB_NAME
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")  # a fresh, empty database (user_version 0)
    other.execute("BEGIN IMMEDIATE")
    opened: list[object] = []
    thread = threading.Thread(target=lambda: opened.append(_open_or_error(path)))
    thread.start()
    time.sleep(0.5)  # A has read version 0 and waits in BEGIN IMMEDIATE
    for version, migration in enumerate(MIGRATIONS):
        for statement in migration.split(";"):
            if statement.strip():
                other.execute(statement)
        other.execute(f"PRAGMA user_version = {version + 1}")
    other.execute("COMMIT")
    other.close()
    thread.join(20)
    assert opened == [SCHEMA_VERSION]


def _open_or_error(path: Path) -> object:
    """The schema version A sees once open, or the error it got."""
    try:
        with Store(path) as store:
            return store.schema_version
    except StateError as exc:
        return exc


def _opener(path: str, ready: object) -> None:
    ready.wait()  # type: ignore[attr-defined]
    Store.open(Path(path)).close()


def test_processes_opening_a_fresh_state_directory_at_once(tmp_path: Path) -> None:
    # racker serve and racker bootstrap started together on a new state directory.
    ctx = multiprocessing.get_context("fork")
    for round_ in range(5):
        state = tmp_path / f"state{round_}"
        ready = ctx.Event()
        procs = [ctx.Process(target=_opener, args=(str(state), ready)) for _ in range(4)]
        for p in procs:
            p.start()
        ready.set()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        with Store.open(state) as store:
            assert store.schema_version == SCHEMA_VERSION
