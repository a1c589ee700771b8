"""Store access of a running boot stack happens off the event loop (issue 22): the directory's
node-state reads, /api/v1/nodes and SIGHUP's reload (allocations through the store's writer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import racker.app.directory as directory_module
from racker.app.directory import NodeDirectory
from racker.app.reload import reload_from_files
from racker.app.stack import BootStack
from racker.model import BootAction, NodeState
from racker.rack.loading import Rack
from racker.store import Store
from racker.store_writer import StoreWriter, run_on_connection
from tests.unit.serve.test_node_directory import NODE1, Clock, rack  # noqa: F401 - a fixture

T = TypeVar("T")


async def test_state_reads_run_on_a_thread_and_answer_from_the_cache_meanwhile(
    rack: Rack,  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    threads: list[int] = []
    gate = threading.Event()

    def watched(path: Path, job: Callable[[Store], T]) -> T:
        threads.append(threading.get_ident())
        gate.wait(5)  # a slow disk
        return run_on_connection(path, job)

    with Store.open(rack.state_dir) as store, Store.open(rack.state_dir) as other:
        directory = NodeDirectory(rack, store, clock=clock)  # at start: read at once
        monkeypatch.setattr(directory_module, "run_on_connection", watched)
        other.set_node_state(NodeState(NODE1, "installed", 1.0))
        clock.now += NodeDirectory.STATE_TTL
        # Stale: a read starts on a thread; the packet is answered from what was read before.
        assert directory.boot_action(NODE1) is BootAction.PXE
        assert [n["state"] for n in directory.nodes_json() if n["primary_mac"] == NODE1] == [
            "unknown"
        ]
        await asyncio.sleep(0.05)
        assert directory.boot_action(NODE1) is BootAction.PXE  # the read is still held
        assert len(threads) == 1  # one read at a time, not one per question
        gate.set()
        for _ in range(200):
            if directory.boot_action(NODE1) is BootAction.DISK:
                break
            await asyncio.sleep(0.01)
        assert directory.boot_action(NODE1) is BootAction.DISK
        assert [n["state"] for n in directory.nodes_json() if n["primary_mac"] == NODE1] == [
            "installed"
        ]
    assert threading.get_ident() not in threads


class HeldWriter(StoreWriter):
    """A StoreWriter whose jobs wait at ``gate`` on its thread (a stalled disk)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.held = threading.Event()
        self.jobs: list[str] = []

    def submit(self, job: Callable[[Store], T]) -> Any:
        def held(store: Store) -> T:
            self.jobs.append(getattr(job, "__name__", "?"))
            if not self.gate.is_set():
                self.held.set()
                self.gate.wait(10)
            return job(store)

        return super().submit(held)


async def test_a_sighup_reload_writes_through_the_writer_and_leaves_the_loop_free(
    rack: Rack,  # noqa: F811 - the fixture
) -> None:
    loaded_on: list[int] = []

    def load() -> Rack:
        loaded_on.append(threading.get_ident())
        return rack

    with Store.open(rack.state_dir) as store:
        stack = BootStack(rack, store)  # not started: no sockets, the writer set by hand
        writer = HeldWriter(store.path)
        writer.start()
        stack.writer = writer
        try:
            task = reload_from_files(stack, load)
            while not writer.held.is_set():  # the allocations' write reached the disk
                await asyncio.sleep(0.005)
            ticks = 0
            for _ in range(5):  # the loop runs on while the write is held
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 5 and not task.done()
            writer.gate.set()
            assert await asyncio.wait_for(task, 10) is True
        finally:
            writer.gate.set()
            writer.close()
    assert writer.jobs[0] == "sync"  # the allocation table, written by the writer's thread
    assert loaded_on and threading.get_ident() not in loaded_on  # files read on a thread
    assert stack.directory.address_of(NODE1) == "10.99.0.65"


async def test_prefetched_leases_serve_the_dhcp_reload_unless_a_lease_change_followed(
    tmp_path: Path,
) -> None:
    Store.open(tmp_path).close()
    writer = StoreWriter(tmp_path / "racker.db")
    writer.start()
    try:
        row = ("10.99.0.70", "52:54:00:77:00:01", "bound", 1e10, None, None)
        await asyncio.wrap_future(writer.commit_lease_rows([row], 1.0))
        await writer.prefetch_leases()
        with Store.open(tmp_path) as other:  # a change the writer did not make (tests only)
            other.save_lease_rows([("10.99.0.71", "52:54:00:77:00:02", "bound", 1e10, None, None)])
        assert [str(x.address) for x in writer.leases()] == ["10.99.0.70"]  # the prefetched
        await writer.prefetch_leases()
        writer.commit_lease_rows([(*row[:2], "released", *row[3:])], 2.0)  # after the read
        found = {str(x.address): x.state for x in writer.leases()}  # read again: exact
        assert found == {"10.99.0.70": "released", "10.99.0.71": "bound"}
    finally:
        writer.close()
