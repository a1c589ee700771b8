"""The orchestrator's store writes go through a writer thread (issue 22): batched, never on the
event loop, and the phase a BMC action is for is committed before the action."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from aiohttp import web

from racker.bootstrap.journal import StateJournal
from racker.bootstrap.machine import Deadlines, Phase
from racker.bootstrap.orchestrator import Bootstrap, RunOptions
from racker.bootstrap.storage import NodeStateStore
from racker.events import NodeStateEvent
from racker.model import NodeState
from racker.power.base import BmcTarget, BootSetting, PowerAction, PowerState
from racker.store import Store
from racker.store_writer import StoreWriter
from tests.unit.bootstrap.test_orchestrator import ScriptedRack, make_targets

T = TypeVar("T")
# The scripted nodes answer at once; deadlines only need to outlast a loaded test machine.
ROOMY = Deadlines({p: 10.0 for p in Phase if p not in (Phase.READY, Phase.FAILED)})


class GatedJobs:
    """A StoreWriter whose jobs wait, on its thread, while ``gate`` is closed (a stalled disk);
    counts the jobs and can fail the next ``fail`` of them."""

    def __init__(self, writer: StoreWriter, hold_from: int = 1) -> None:
        self.writer = writer
        self.hold_from = hold_from  # the first job (counting from 1) the closed gate holds
        self.gate = threading.Event()
        self.gate.set()
        self.held = threading.Event()  # a job is waiting at the closed gate
        self.submitted = 0
        self.fail = 0

    def submit(self, job: Callable[[NodeStateStore], T]) -> concurrent.futures.Future[T]:
        self.submitted += 1
        failing, holds = self.fail > 0, self.submitted >= self.hold_from
        self.fail -= failing

        def gated(store: Store) -> T:
            if holds and not self.gate.is_set():
                self.held.set()
                self.gate.wait()
            if failing:
                raise OSError("disk I/O error")
            return job(store)

        return self.writer.submit(gated)


class Witness(ScriptedRack):
    """Fake BMCs that, at each call, read the node's stored phase from another connection."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__({})
        self.state_dir = state_dir
        self.seen: list[tuple[str, str, str]] = []  # (op, arg, stored phase at that moment)

    def _stored(self, target: BmcTarget) -> str:
        with Store.open(self.state_dir) as other:
            state = other.node_states().get(self.macs[target.host])
        return state.state if state else "-"

    async def _do_power_status(self, target: BmcTarget) -> PowerState:
        self.seen.append(("power_status", "", self._stored(target)))
        return await super()._do_power_status(target)

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        self.seen.append(("power", str(action), self._stored(target)))
        await super()._do_power(target, action)

    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None:
        self.seen.append(("set_boot", str(setting.device), self._stored(target)))
        await super()._do_set_boot(target, setting)


@pytest.fixture
def writer(tmp_path: Path) -> Any:
    Store.open(tmp_path / "state").close()
    # Each commit 20 ms late: an action not waiting for its commit would see the old phase.
    made = StoreWriter(tmp_path / "state" / "racker.db", commit_delay=0.02)
    made.start()
    yield made
    made.close()


async def test_the_phase_a_bmc_action_is_for_is_committed_before_the_action(
    tmp_path: Path, writer: StoreWriter
) -> None:
    driver = Witness(tmp_path / "state")
    targets = make_targets(2, driver)
    with Store.open(tmp_path / "state") as store:
        boot = Bootstrap(
            targets, driver, store, RunOptions(deadlines=ROOMY, on_failure="exclude"), jobs=writer
        )
        driver.bootstrap = boot
        result = await asyncio.wait_for(boot.run(), 20)
        states = {s.state for s in store.node_states().values()}
    for task in driver.tasks:
        task.cancel()
    assert result.ok
    assert states == {"ready"}  # the run's end stored everything
    # What each call found in the store: the phase it is for, never an older one.
    assert sorted(set(driver.seen)) == [
        ("power", "on", "pxe-armed"),
        ("power_status", "", "pending"),  # CHECK_BMC
        ("power_status", "", "pxe-armed"),  # POWER_CYCLE asks first
        ("set_boot", "disk", "installed"),
        ("set_boot", "pxe", "bmc-ok"),
    ]


async def test_a_held_commit_holds_the_bmc_action_not_the_event_loop(
    tmp_path: Path, writer: StoreWriter
) -> None:
    """While the orchestrator's first commit is held (a stalled disk), an HTTP request on the
    same loop is answered; no BMC is called and no node log written until the commit is done."""
    jobs = GatedJobs(writer, hold_from=2)  # the run's read passes, its first commit waits
    driver = ScriptedRack({})
    targets = make_targets(1, driver)
    app = web.Application()

    async def hello(_request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen: list[NodeStateEvent] = []
    with Store.open(tmp_path / "state") as store:
        boot = Bootstrap(
            targets,
            driver,
            store,
            RunOptions(deadlines=ROOMY, on_failure="exclude"),
            publish=lambda e: seen.append(e) if isinstance(e, NodeStateEvent) else None,
            log_dir=tmp_path / "logs",
            jobs=jobs,
        )
        driver.bootstrap = boot
        jobs.gate.clear()  # every commit from now on waits
        task = asyncio.create_task(boot.run())
        try:
            while not jobs.held.is_set():  # the first commit reached the gate
                await asyncio.sleep(0.005)
            assert boot.records[targets[0].mac].phase is Phase.PENDING  # recorded, not stored
            async with (
                aiohttp.ClientSession() as session,
                session.get(f"http://127.0.0.1:{port}/") as resp,
            ):
                answered = await resp.text()
            # Answered while the job is still held: the loop did not wait for the disk.
            assert answered == "hello"
            assert not jobs.gate.is_set() and not task.done()
            assert driver.calls == []  # nothing acted on a state not yet stored
            assert store.node_states() == {}
            assert not (tmp_path / "logs").exists()  # the node log is the writer's, too
        finally:
            jobs.gate.set()
        result = await asyncio.wait_for(task, 20)
        assert result.ok
        assert store.node_states()[targets[0].mac].state == "ready"
        assert (tmp_path / "logs" / targets[0].name / "attempt-1.jsonl").stat().st_size > 0
    await runner.cleanup()
    for t in driver.tasks:
        t.cancel()
    assert [e.new for e in seen][:2] == ["pending", "bmc-ok"]


async def test_states_recorded_during_a_commit_share_the_next_one(
    tmp_path: Path, writer: StoreWriter
) -> None:
    jobs = GatedJobs(writer)
    journal = StateJournal(jobs)
    jobs.gate.clear()
    journal.record(NodeState("m1", "pending", 1.0))
    await asyncio.sleep(0)  # the first batch is submitted (held at the gate)
    waiting = asyncio.create_task(journal.committed())
    for phase in ("bmc-ok", "pxe-armed", "power-cycled"):
        journal.record(NodeState("m1", phase, 2.0))
    journal.record(NodeState("m2", "pending", 2.0))
    last = asyncio.create_task(journal.committed())
    await asyncio.sleep(0.05)
    assert not waiting.done() and not last.done()
    assert jobs.submitted == 1  # one batch in flight at a time
    jobs.gate.set()
    await asyncio.wait_for(asyncio.gather(waiting, last), 5)
    assert jobs.submitted == 2  # the four records after the first made one batch
    with Store.open(tmp_path / "state") as store:
        stored = {m: s.state for m, s in store.node_states().items()}
    assert stored == {"m1": "power-cycled", "m2": "pending"}


async def test_a_failed_commit_is_retried_and_committed_waits_for_it(
    tmp_path: Path, writer: StoreWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StateJournal, "RETRY_DELAY", 0.05)
    jobs = GatedJobs(writer)
    jobs.fail = 1
    journal = StateJournal(jobs)
    journal.record(NodeState("m1", "pxe-armed", 1.0))
    await asyncio.wait_for(journal.committed(), 5)
    assert jobs.submitted == 2
    with Store.open(tmp_path / "state") as store:
        assert store.node_states()["m1"].state == "pxe-armed"
    journal.record(NodeState("m1", "power-cycled", 2.0))
    await journal.close()  # the end of a run: stored before it returns
    with Store.open(tmp_path / "state") as store:
        assert store.node_states()["m1"].state == "power-cycled"
    assert not journal.pending


async def test_close_gives_up_on_a_store_that_keeps_failing_and_retries_no_more(
    writer: StoreWriter, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = GatedJobs(writer)
    jobs.fail = 1000
    journal = StateJournal(jobs)
    journal.record(NodeState("m1", "pxe-armed", 1.0))
    await journal.close()
    submitted = jobs.submitted
    await asyncio.sleep(StateJournal.RETRY_DELAY + 0.2)
    assert jobs.submitted == submitted == 1  # no retry after close gave up
    assert journal.pending
    assert "node states not stored at the end of the run" in caplog.text
