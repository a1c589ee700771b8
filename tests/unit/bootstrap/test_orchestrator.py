"""The orchestrator against fed events and the fake power driver (no network, short deadlines)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from racker.bootstrap.machine import Deadlines, Phase
from racker.bootstrap.orchestrator import Bootstrap, NodeTarget, RunOptions
from racker.bootstrap.plan import PlannedNode, Role
from racker.bootstrap.sharing import RunLock
from racker.errors import BmcNotConfigured, StateError
from racker.events import DhcpEvent, Event, HttpEvent, NodeStateEvent, PhoneHomeEvent, TftpEvent
from racker.model import BootAction, Node
from racker.power.base import BmcCredentials, BmcTarget, BootDevice, PowerAction
from racker.power.fake import FakeDriver
from racker.store import Store

FAST = Deadlines({p: 0.5 for p in Phase if p not in (Phase.READY, Phase.FAILED)})
CREDS = BmcCredentials("admin", "secret")


def boot_sequence(mac: str, ip: str, fail_install: bool = False) -> list[Event]:
    """What a BIOS PXE node does, as the boot stack reports it."""
    return [
        DhcpEvent("discover", mac, 0, message="DISCOVER", client_kind="bios"),
        DhcpEvent("ack", mac, 0, message="ACK", direction="out", client_kind="bios"),
        TftpEvent("transfer-finished", None, 0, peer=f"{ip}:2000", file="undionly.kpxe"),
        DhcpEvent("discover", mac, 0, message="DISCOVER", client_kind="ipxe"),
        HttpEvent("request", None, 0, peer=ip, path="/boot.ipxe", status=200),
        HttpEvent("request", mac, 0, peer=ip, path="/ipxe", status=200),
        HttpEvent("request", None, 0, peer=ip, path="/assets/flatcar/v/kernel", status=200),
        HttpEvent("request", mac, 0, peer=ip, path="/ignition", status=200),
        PhoneHomeEvent("install-started", mac, 0),
        PhoneHomeEvent("failed" if fail_install else "installed", mac, 0, message="disk broke"),
    ]


def os_boot(mac: str) -> list[Event]:
    return [
        DhcpEvent("discover", mac, 0, message="DISCOVER", client_kind="os"),
        DhcpEvent("ack", mac, 0, message="ACK", direction="out", client_kind="os"),
    ]


class ScriptedRack(FakeDriver):
    """Fake BMCs whose nodes 'boot' when powered on, by feeding events to the orchestrator."""

    def __init__(self, behaviour: dict[str, str]) -> None:
        super().__init__(timeout=2.0)
        self.behaviour = behaviour  # BMC host -> ok | fail-install | one-time-ignored | dead
        self.bootstrap: Bootstrap | None = None
        self.macs: dict[str, str] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.power_ons: list[float] = []

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        boot = self.bmc(target.host).boot
        await super()._do_power(target, action)
        self.power_ons.append(time.monotonic())
        if action in (PowerAction.ON, PowerAction.CYCLE, PowerAction.RESET):
            self.tasks.append(
                asyncio.create_task(self._boot(target.host, boot.device, boot.persistent))
            )

    async def _boot(self, host: str, device: BootDevice, persistent: bool) -> None:
        await asyncio.sleep(0.01)
        mac, kind = self.macs[host], self.behaviour.get(host, "ok")
        ip = "10.0.0." + host.rsplit(".", 1)[1]
        pxe = device is BootDevice.PXE and (persistent or kind != "one-time-ignored")
        if kind == "never-pxe" or not pxe:
            events = os_boot(mac)
        else:
            events = boot_sequence(mac, ip, kind == "fail-install")
        assert self.bootstrap is not None
        for event in events:
            self.bootstrap.feed(event)
            await asyncio.sleep(0)
        if pxe and kind != "fail-install":
            # the installer reboots the node; firmware then boots what racker set
            await asyncio.sleep(0.02)
            self.tasks.append(
                asyncio.create_task(self._boot(host, self.bmc(host).boot.device, True))
            )


def make_targets(n: int, driver: ScriptedRack, dead: set[int] = frozenset()) -> list[NodeTarget]:  # type: ignore[assignment]
    targets = []
    for i in range(1, n + 1):
        node = Node(i + 1, i, f"52:54:00:00:00:{i:02x}", f"52:54:00:00:01:{i:02x}", None, "x")
        host = f"10.0.1.{i}"
        driver.macs[host] = node.primary_mac
        bmc: BmcTarget | BmcNotConfigured = BmcTarget(
            node.hostname, host, CREDS, mac=node.primary_mac
        )
        if i in dead:
            bmc = BmcNotConfigured(node.hostname, "no address allocated for BMC MAC")
        targets.append(NodeTarget(PlannedNode(node, Role.FLATCAR), bmc))
    return targets


async def run(
    tmp_path: Path,
    n: int,
    behaviour: dict[str, str] | None = None,
    dead: set[int] = frozenset(),  # type: ignore[assignment]
    **opts: object,
) -> tuple[Bootstrap, ScriptedRack, list[Event]]:
    driver = ScriptedRack(behaviour or {})
    targets = make_targets(n, driver, dead)
    seen: list[Event] = []
    options = RunOptions(deadlines=FAST, backoff=lambda _a: 0.01, **opts)  # type: ignore[arg-type]
    with Store.open(tmp_path / "state") as store:
        boot = Bootstrap(
            targets,
            driver,
            store,
            options,
            publish=seen.append,
            log_dir=tmp_path / "logs",
            macs_by_address={f"10.0.0.{i}": t.mac for i, t in enumerate(targets, 1)},
        )
        driver.bootstrap = boot
        result = await asyncio.wait_for(boot.run(), 20)
        boot.result = result  # type: ignore[attr-defined]
    for task in driver.tasks:
        task.cancel()
    return boot, driver, seen


async def test_all_nodes_become_ready(tmp_path: Path) -> None:
    boot, driver, seen = await run(tmp_path, 5, on_failure="exclude")
    result = boot.result  # type: ignore[attr-defined]
    assert result.ok
    assert {r.phase for r in result.records.values()} == {Phase.READY}
    first = [e.new for e in seen if isinstance(e, NodeStateEvent) and e.node == "x-000001"]
    assert first == [
        "pending",
        "bmc-ok",
        "pxe-armed",
        "power-cycled",
        "dhcp-seen",
        "loader-fetched",
        "script-fetched",
        "kernel-fetched",
        "ignition-fetched",
        "installing",
        "installed",
        "disk-set",
        "rebooted",
        "ready",
    ]
    # the boot device ends persistent disk; the policy now says disk
    for host in driver.macs:
        assert driver.bmc(host).boot.device is BootDevice.DISK
        assert driver.bmc(host).boot.persistent
    assert boot.boot_policy("52:54:00:00:00:01") is BootAction.DISK
    assert boot.boot_policy("52:54:00:00:00:99") is BootAction.PXE
    log = tmp_path / "logs" / "x-000001" / "attempt-1.jsonl"
    kinds = [json.loads(line)["source"] for line in log.read_text().splitlines()]
    assert {"dhcp", "tftp", "http", "phone-home", "bootstrap"} <= set(kinds)
    with Store.open(tmp_path / "state") as store:
        states = store.node_states()
        assert {s.state for s in states.values()} == {"ready"}
        assert store.events("52:54:00:00:00:02", limit=1000)[-1]["new"] == "ready"

    # a second run skips ready nodes: no BMC call at all
    boot2, driver2, _ = await run(tmp_path, 5, on_failure="exclude")
    assert boot2.result.ok  # type: ignore[attr-defined]
    assert driver2.calls == []


async def test_failures_are_retried_then_excluded(tmp_path: Path) -> None:
    behaviour = {"10.0.1.2": "fail-install", "10.0.1.3": "never-pxe"}
    boot, driver, _ = await run(tmp_path, 4, behaviour, dead={4}, retries=1, on_failure="exclude")
    records = boot.result.records  # type: ignore[attr-defined]
    assert not boot.result.ok  # type: ignore[attr-defined]
    phases = {
        boot.targets[mac].name: (r.phase, r.attempt, r.failed_in) for mac, r in records.items()
    }
    assert phases == {
        "x-000001": (Phase.READY, 1, ""),
        "x-000002": (Phase.FAILED, 2, "installing"),
        "x-000003": (Phase.FAILED, 2, "power-cycled"),
        "x-000004": (Phase.FAILED, 2, "pending"),
    }
    assert "disk broke" in records["52:54:00:00:00:02"].reason
    assert "no DHCP request" in records["52:54:00:00:00:03"].reason
    assert "no address allocated" in records["52:54:00:00:00:04"].reason
    # the node that never PXE booted was retried with a persistent PXE boot device
    armed = [c.arg for c in driver.calls if c.node == "x-000003" and c.op == "set_boot_device"]
    assert armed == ["pxe", "pxe (persistent)"]


async def test_one_time_override_ignored_then_persistent_works(tmp_path: Path) -> None:
    boot, _, _ = await run(tmp_path, 1, {"10.0.1.1": "one-time-ignored"}, on_failure="exclude")
    rec = next(iter(boot.result.records.values()))  # type: ignore[attr-defined]
    assert (rec.phase, rec.attempt, rec.persistent_pxe) == (Phase.READY, 2, True)


async def test_on_failure_ask_and_cancel(tmp_path: Path) -> None:
    asked: list[str] = []

    async def ask(name: str, _rec: object) -> str:
        asked.append(name)
        return "retry" if len(asked) == 1 else "cancel"

    driver = ScriptedRack({"10.0.1.1": "fail-install"})
    targets = make_targets(1, driver)
    with Store.open(tmp_path) as store:
        boot = Bootstrap(
            targets,
            driver,
            store,
            RunOptions(retries=0, deadlines=FAST, backoff=lambda _a: 0.0),
            ask=ask,
        )  # type: ignore[arg-type]
        driver.bootstrap = boot
        result = await asyncio.wait_for(boot.run(), 20)
    assert asked == ["x-000001", "x-000001"]
    assert result.cancelled
    assert not result.ok


async def test_parallel_and_stagger_limit_power_ons(tmp_path: Path) -> None:
    boot, driver, seen = await run(tmp_path, 4, parallel=2, stagger=0.05, on_failure="exclude")
    assert boot.result.ok  # type: ignore[attr-defined]
    powered = [e.ts for e in seen if isinstance(e, NodeStateEvent) and e.new == "power-cycled"]
    assert len(powered) == 4
    ready = [e.ts for e in seen if isinstance(e, NodeStateEvent) and e.new == "ready"]
    # with 2 in flight, the 3rd node powers on only after one of the first two is ready
    assert sorted(powered)[2] >= sorted(ready)[0]
    ons = driver.power_ons
    assert min(b - a for a, b in itertools.pairwise(ons)) >= 0.05


async def test_resume_continues_from_the_stored_phase(tmp_path: Path) -> None:
    driver = ScriptedRack({})
    targets = make_targets(1, driver)
    mac = targets[0].mac
    with Store.open(tmp_path / "state") as store:
        from racker.model import NodeState

        # as if racker was killed while the node was installing (data written by a past run)
        store.set_node_state(NodeState(mac, "installing", 1.0, 2, "", {"persistent_pxe": True}))
        boot = Bootstrap(targets, driver, store, RunOptions(deadlines=FAST, on_failure="exclude"))
        driver.bootstrap = boot
        task = asyncio.create_task(boot.run())
        await asyncio.sleep(0.05)
        assert boot.records[mac].phase is Phase.INSTALLING
        assert boot.records[mac].since == 1.0  # since when: kept
        for event in [PhoneHomeEvent("installed", mac, 0), *os_boot(mac)]:
            boot.feed(event)
        result = await asyncio.wait_for(task, 10)
    assert result.ok
    assert result.records[mac].attempt == 2
    assert [c.op for c in driver.calls] == ["set_boot_device"]  # no power cycle on resume


def test_lock_refuses_a_second_run(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        with pytest.raises(StateError) as info:
            RunLock(tmp_path).acquire()
        assert "another racker bootstrap is running" in info.value.message
    with RunLock(tmp_path) as again:  # released: free again
        assert again.path.read_text().strip().isdigit()
