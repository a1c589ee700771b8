"""Per-node asyncio controllers that drive the state table (layer 4).

One ``Bootstrap`` per run. Each selected node gets a controller task that asks the pure
machine (``racker.bootstrap.machine``) what to do next, does it through the power interface,
and feeds the result back; observations arrive through ``feed`` (the boot stack's ``Publish``)
and are queued per node. Transitions and events reach the store through a ``StateJournal``
(``racker.bootstrap.journal``): in batches, off the event loop, and every transition committed
before the next BMC action, so a run killed at any point (even SIGKILL) resumes from a stored
phase whose action is at most the one that was under way (the actions are idempotent).

This module sees only ``racker.power.base``, events, the store's Protocol
(``racker.bootstrap.storage``) and the model: the composition root hands it a concrete driver
and the SQLite store, and connects ``feed`` and ``boot_policy`` to the boot stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from racker.bootstrap import machine as m
from racker.bootstrap.journal import InlineJobs, StateJournal, StoreJobs
from racker.bootstrap.machine import Action, Deadlines, NodeRecord, Phase, Signal
from racker.bootstrap.plan import PlannedNode
from racker.bootstrap.storage import NodeStateStore
from racker.errors import BmcError
from racker.events import (
    Event,
    NodeStateEvent,
    Publish,
    discard,
)
from racker.model import BootAction, NodeState
from racker.power.base import (
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)

log = logging.getLogger("racker.bootstrap")

OnFailure = Literal["ask", "retry", "exclude", "cancel"]
Decision = Literal["retry", "exclude", "cancel"]
# Asks the operator what to do with a node whose retries are used up (only on a TTY).
Ask = Callable[[str, NodeRecord], Awaitable[Decision]]


@dataclass(frozen=True)
class RunOptions:
    parallel: int = 0  # at most this many nodes in flight; 0: all
    stagger: float = 0.0  # seconds between two power-ons (power and TFTP storms)
    retries: int = 2  # attempts after the first one
    on_failure: OnFailure = "ask"
    reprovision: bool = False  # install ready nodes again
    efi: bool = False  # ask BMCs for UEFI boot (boot flags byte 1 bit 5)
    deadlines: Deadlines = field(default_factory=Deadlines)
    backoff: m.Backoff = m.default_backoff


@dataclass(frozen=True)
class NodeTarget:
    """A planned node and its BMC (or the reason racker cannot reach one)."""

    planned: PlannedNode
    bmc: BmcTarget | BmcError

    @property
    def mac(self) -> str:
        return self.planned.node.primary_mac

    @property
    def name(self) -> str:
        return self.planned.name


@dataclass(frozen=True)
class RunResult:
    records: dict[str, NodeRecord]  # by primary MAC, the final state of every selected node
    started: float
    finished: float
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.cancelled and all(r.phase is Phase.READY for r in self.records.values())


class Bootstrap:
    """Drives every node of a plan to ``ready`` (or gives up on it) through one run."""

    def __init__(
        self,
        targets: Sequence[NodeTarget],
        driver: PowerDriver,
        store: NodeStateStore,
        options: RunOptions | None = None,
        *,
        publish: Publish = discard,
        log_dir: Path | None = None,
        macs_by_address: Mapping[str, str] | None = None,
        ask: Ask | None = None,
        clock: Callable[[], float] = time.time,
        record_events: bool = True,
        jobs: StoreJobs | None = None,
    ) -> None:
        self.targets = {t.mac: t for t in targets}
        self.driver = driver
        self.store = store
        # The store's reads and writes: ``jobs`` (racker: the StoreWriter's thread), else
        # ``store`` itself on the loop's thread (tests).
        self.journal = StateJournal(jobs or InlineJobs(store))
        self.options = options or RunOptions()
        self.publish = publish
        self.log_dir = log_dir
        self.macs_by_address = dict(macs_by_address or {})
        self.ask = ask
        self.clock = clock
        # False when the boot stack's own hub already writes every event to the store.
        self.record_events = record_events
        self.records: dict[str, NodeRecord] = {}
        self._inbox: dict[str, asyncio.Queue[tuple[Signal, Event]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancelled = asyncio.Event()
        self._stagger_lock = asyncio.Lock()
        self._last_power_on = 0.0
        # Phases of nodes not in this run, so the boot stack never re-images a ready node.
        self._stored_phases: dict[str, Phase] = {}

    # -- the boot stack's side ---------------------------------------------------------

    def feed(self, event: Event) -> None:
        """A ``Publish`` for the boot stack; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._route(event)
        else:
            loop.call_soon_threadsafe(self._route, event)

    def boot_policy(self, mac: str) -> BootAction:
        """The ``BootPolicy`` for the boot stack: disk for installed nodes, else PXE."""
        rec = self.records.get(mac)
        return m.boot_action(rec.phase if rec is not None else self._stored_phases.get(mac))

    def mac_of(self, event: Event) -> str | None:
        if event.mac is not None:
            return event.mac
        peer = getattr(event, "peer", "")
        if isinstance(peer, str) and peer:
            return self.macs_by_address.get(
                peer.rsplit(":", 1)[0] if peer.count(":") == 1 else peer
            )
        return None

    def _route(self, event: Event) -> None:
        mac = self.mac_of(event)
        if mac is None or mac not in self.targets:
            return
        self._node_log(mac, event.to_dict() if event.mac else {**event.to_dict(), "mac": mac})
        if self.record_events:
            self.journal.record(
                events=[event if event.mac else dataclasses.replace(event, mac=mac)]
            )
        try:
            self.publish(event if event.mac else dataclasses.replace(event, mac=mac))
        except Exception:
            log.exception("publishing a node's event failed")
        signal = m.classify(event)
        if signal is not None and mac in self._inbox:
            self._inbox[mac].put_nowait((signal, event))

    # -- the run -----------------------------------------------------------------------

    def cancel(self) -> None:
        self._cancelled.set()

    async def run(self) -> RunResult:
        self._loop = asyncio.get_running_loop()
        started = self.clock()
        stored = await asyncio.wrap_future(self.journal.jobs.submit(_node_states))
        self._stored_phases = {
            mac: m.NodeRecord.from_stored(
                mac, s.state, s.since, s.attempt, s.reason, s.data or {}
            ).phase
            for mac, s in stored.items()
        }
        for mac, target in self.targets.items():
            self.records[mac] = self._initial(target, stored.get(mac), started)
            self._inbox[mac] = asyncio.Queue()
        limit = self.options.parallel or len(self.targets) or 1
        semaphore = asyncio.Semaphore(limit)
        tasks = [
            asyncio.create_task(self._guarded(t, semaphore), name=f"bootstrap-{t.name}")
            for t in self.targets.values()
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.journal.close()  # every state and event of the run stored
        return RunResult(dict(self.records), started, self.clock(), self._cancelled.is_set())

    def _initial(self, target: NodeTarget, stored: NodeState | None, now: float) -> NodeRecord:
        d = self.options.deadlines
        role = str(target.planned.role)
        if stored is None:
            rec = m.start(target.mac, now, d)
            self._save(dataclasses.replace(rec, role=role), "", "new")
            return self.records[target.mac]
        rec = m.NodeRecord.from_stored(
            target.mac, stored.state, stored.since, stored.attempt, stored.reason, stored.data or {}
        )
        rec = dataclasses.replace(rec, role=role)
        if rec.phase is Phase.READY and not self.options.reprovision:
            return rec
        if rec.phase in (Phase.READY, Phase.FAILED):
            # A new run gives a failed node a fresh set of retries; ``--reprovision`` a ready one.
            fresh = m.advance(rec, Signal.REPROVISION, now, d)
            assert fresh is not None
            rec = dataclasses.replace(fresh, attempt=1)
            self._save(rec, str(stored.state), "new run")
            return self.records[target.mac]
        return m.resume(rec, now, d)

    async def _guarded(self, target: NodeTarget, semaphore: asyncio.Semaphore) -> None:
        if self.records[target.mac].phase is Phase.READY:
            return
        async with semaphore:
            try:
                await self._drive(target)
            except Exception as exc:  # a bug must fail one node, loudly, not the whole run
                log.exception("%s: controller crashed", target.name)
                self._transition(target, Signal.TIMEOUT, f"racker internal error: {exc!r}")

    async def _drive(self, target: NodeTarget) -> None:
        while not self._cancelled.is_set():
            rec = self.records[target.mac]
            action = m.next_action(rec)
            if action is Action.DONE:
                return
            if action is Action.GIVE_UP:
                if not await self._after_failure(target, rec):
                    return
                continue
            if rec.not_before > self.clock():
                await self._sleep(rec.not_before - self.clock())
                continue
            if action is Action.WAIT:
                await self._wait(target, rec)
                continue
            # The phase this action is for is committed first (the module's docstring).
            if not await self._durable():
                return
            signal, reason = await self._act(target, rec, action)
            self._transition(target, signal, reason)

    async def _after_failure(self, target: NodeTarget, rec: NodeRecord) -> bool:
        o = self.options
        nxt = m.after_failure(rec, self.clock(), o.retries, o.deadlines, o.backoff)
        if nxt is None:
            decision: Decision
            if o.on_failure == "ask":
                decision = await self.ask(target.name, rec) if self.ask else "exclude"
            else:
                decision = o.on_failure
            log.warning(
                "%s: failed after %d attempt(s): %s; %s",
                target.name,
                rec.attempt,
                rec.reason,
                decision,
            )
            if decision == "cancel":
                self.cancel()
                return False
            if decision == "exclude":
                return False
            nxt = m.after_failure(rec, self.clock(), o.retries, o.deadlines, o.backoff, force=True)
            assert nxt is not None
        self._save(nxt, str(rec.phase), f"retry {nxt.attempt}")
        return True

    async def _durable(self) -> bool:
        """Wait until every state recorded so far is committed; False if the run is cancelled
        first (a store that keeps failing must not keep a cancelled run alive)."""
        if not self.journal.pending:
            return True
        commit = asyncio.ensure_future(self.journal.committed())
        cancelled = asyncio.ensure_future(self._cancelled.wait())
        try:
            await asyncio.wait({commit, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            commit.cancel()
            cancelled.cancel()
        return not self._cancelled.is_set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._cancelled.wait(), max(seconds, 0.0))

    async def _wait(self, target: NodeTarget, rec: NodeRecord) -> None:
        inbox = self._inbox[target.mac]
        remaining = None if rec.deadline is None else rec.deadline - self.clock()
        if remaining is not None and remaining <= 0:
            self._transition(target, Signal.TIMEOUT, m.timeout_reason(rec, self.options.deadlines))
            return
        getter = asyncio.ensure_future(inbox.get())
        cancelled = asyncio.ensure_future(self._cancelled.wait())
        try:
            done, _ = await asyncio.wait(
                {getter, cancelled}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            cancelled.cancel()
        if getter in done:
            signal, event = getter.result()
            message = getattr(event, "message", "") if signal is Signal.INSTALL_FAILED else ""
            self._transition(target, signal, f"installer: {message}" if message else "", event)
            return
        getter.cancel()
        if not self._cancelled.is_set():
            self._transition(target, Signal.TIMEOUT, m.timeout_reason(rec, self.options.deadlines))

    async def _act(self, target: NodeTarget, rec: NodeRecord, action: Action) -> tuple[Signal, str]:
        bmc = target.bmc
        if isinstance(bmc, BmcError):
            return Signal.BMC_FAILED, f"bmc: {bmc.message}"
        driver = self.driver
        try:
            if action is Action.CHECK_BMC:
                await driver.power_status(bmc)
                return Signal.BMC_OK, ""
            if action is Action.ARM_PXE:
                setting = BootSetting(BootDevice.PXE, rec.persistent_pxe, self.options.efi)
                await driver.set_boot_device(bmc, setting)
                return Signal.PXE_ARMED, ""
            if action is Action.POWER_CYCLE:
                state = await driver.power_status(bmc)
                async with self._stagger_lock:
                    wait = self._last_power_on + self.options.stagger - time.monotonic()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    # Observations from before this power cycle belong to the old boot.
                    _drain(self._inbox[target.mac])
                    on = state is PowerState.ON
                    await driver.power(bmc, PowerAction.CYCLE if on else PowerAction.ON)
                    self._last_power_on = time.monotonic()
                return Signal.POWER_CYCLED, ""
            if action is Action.SET_DISK:
                # Persistent, so every later boot (and a firmware that forgets) uses the disk.
                setting = BootSetting(BootDevice.DISK, persistent=True, efi=self.options.efi)
                await driver.set_boot_device(bmc, setting)
                return Signal.DISK_SET, ""
        except BmcError as exc:
            return Signal.BMC_FAILED, f"bmc: {exc.message}"
        raise AssertionError(f"no BMC action for {action}")

    # -- transitions, recorded in the journal ---------------------------------------------

    def _transition(
        self, target: NodeTarget, signal: Signal, reason: str = "", event: Event | None = None
    ) -> None:
        rec = self.records[target.mac]
        nxt = m.advance(rec, signal, self.clock(), self.options.deadlines, reason)
        if nxt is None:
            return
        self._save(nxt, str(rec.phase), str(signal), event)

    def _save(self, rec: NodeRecord, old: str, why: str, event: Event | None = None) -> None:
        state = NodeState(rec.mac, str(rec.phase), rec.since, rec.attempt, rec.reason,
                          rec.to_data())  # fmt: skip
        self.records[rec.mac] = rec
        target = self.targets[rec.mac]
        extra: dict[str, object] = {"signal": why}
        if event is not None:
            extra["event"] = f"{event.source}/{event.kind}"
        change = NodeStateEvent(
            kind="transition",
            mac=rec.mac,
            ts=rec.since,
            node=target.name,
            old=old,
            new=str(rec.phase),
            attempt=rec.attempt,
            reason=rec.reason if rec.phase is Phase.FAILED else "",
            extra=extra,
        )
        self.journal.record(state, [change])  # committed before the next BMC action
        self._node_log(rec.mac, change.to_dict())
        log.info(
            "%s: %s -> %s (attempt %d)%s",
            target.name,
            old or "-",
            rec.phase,
            rec.attempt,
            f": {rec.reason}" if rec.phase is Phase.FAILED else "",
        )
        try:
            self.publish(change)
        except Exception:
            log.exception("publishing a node state change failed")

    def _node_log(self, mac: str, entry: Mapping[str, object]) -> None:
        # One JSON line in <log_dir>/<node>/attempt-N.jsonl, appended by the journal's job.
        if self.log_dir is None:
            return
        rec = self.records.get(mac)
        attempt = rec.attempt if rec is not None else 1
        path = self.log_dir / self.targets[mac].name / f"attempt-{attempt}.jsonl"
        self.journal.record(lines=[(path, json.dumps(entry, default=str))])


def _node_states(store: NodeStateStore) -> dict[str, NodeState]:
    return store.node_states()


def _drain(queue: asyncio.Queue[tuple[Signal, Event]]) -> None:
    while not queue.empty():
        queue.get_nowait()
