"""RedfishDriver's operations, sessions, deadline and per-BMC serialisation, with a stub session.

The stub replaces the one choke point (``opener``), so these run without a BMC; sushy itself is
exercised against sushy-tools' emulator in tests/integration/power.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest

from racker.errors import BmcError, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.power.base import (
    BmcCredentials,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
)
from racker.power.redfish import RedfishDriver

from .conftest import PASSWORD

RESETS = ["On", "ForceOff", "GracefulShutdown", "ForceRestart"]


class StubSystem:
    def __init__(self) -> None:
        self.json: dict[str, Any] = {
            "PowerState": "Off",
            "Manufacturer": "Contoso",
            "Model": "R1",
            "BiosVersion": "2.1.0",
            "Boot": {
                "BootSourceOverrideEnabled": "Disabled",
                "BootSourceOverrideTarget": "None",
                "BootSourceOverrideMode": "Legacy",
            },
            "Actions": {
                "#ComputerSystem.Reset": {"ResetType@Redfish.AllowableValues": list(RESETS)}
            },
        }


class Stub:
    """Plays the BMCs: one system each; can hold steps until released."""

    def __init__(self) -> None:
        self.systems: dict[str, StubSystem] = defaultdict(StubSystem)
        self.sent: dict[str, list[str]] = defaultdict(list)
        self.logins: dict[str, int] = defaultdict(int)
        self.closed: list[str] = []
        self.forgotten: list[str] = []
        self.release = threading.Event()
        self.hold: set[str] = set()
        self.fail: dict[str, Exception] = {}
        self.active: dict[str, int] = defaultdict(int)
        self.most_active: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def open(self, target: BmcTarget, verify: Any, deadline: float) -> StubSession:
        self.logins[target.host] += 1
        return StubSession(self, target)


class StubSession:
    def __init__(self, stub: Stub, target: BmcTarget) -> None:
        self.stub = stub
        self.target = target
        self.deadline = 0.0

    def begin(self, deadline: float, target: BmcTarget) -> None:
        self.deadline = deadline

    def _step(self, what: str) -> None:
        stub, host = self.stub, self.target.host
        with stub.lock:
            stub.active[host] += 1
            stub.most_active[host] = max(stub.most_active[host], stub.active[host])
        try:
            stub.sent[host].append(what)
            if host in stub.hold:
                stub.release.wait(10)
            if host in stub.fail:
                raise stub.fail[host]
        finally:
            with stub.lock:
                stub.active[host] -= 1

    def system(self) -> StubSystem:
        self._step("GET system")
        return self.stub.systems[self.target.host]

    def reset(self, reset_type: str) -> None:
        self._step(f"Reset {reset_type}")

    def patch_boot(
        self, target: str | None = None, enabled: str | None = None, mode: str | None = None
    ) -> None:
        self._step(f"PATCH target={target} enabled={enabled} mode={mode}")
        boot = self.stub.systems[self.target.host].json["Boot"]
        for key, value in (("Target", target), ("Enabled", enabled), ("Mode", mode)):
            if value is not None:
                boot[f"BootSourceOverride{key}"] = value

    def manager_firmware(self) -> str:
        self._step("GET manager")
        return "7.10.30.00"

    def close(self) -> None:
        self.stub.closed.append(self.target.host)

    def forget(self) -> None:
        self.stub.forgotten.append(self.target.host)


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.release.set()


def target(n: int, password: str = PASSWORD) -> BmcTarget:
    return BmcTarget(f"node{n}", f"10.0.0.{n}", BmcCredentials("admin", password), scheme="https")


def driver(stub: Stub, timeout: float = 2.0) -> RedfishDriver:
    return RedfishDriver(timeout=timeout, opener=stub.open)


async def test_operations_send_what_redfish_expects(stub: Stub) -> None:
    d, t = driver(stub), target(1)
    assert await d.power_status(t) is PowerState.OFF
    await d.power(t, PowerAction.ON)
    await d.power(t, PowerAction.CYCLE)  # no PowerCycle allowed: ForceRestart
    await d.set_boot_device(t, BootSetting(BootDevice.PXE, persistent=True, efi=True))
    stub.systems["10.0.0.1"].json["Boot"]["BootSourceOverrideTarget"] = "Pxe"
    assert await d.boot_device(t) == BootSetting(BootDevice.PXE, persistent=True, efi=True)
    await d.disable_boot_flag_timeout(t)  # IPMI's timer: nothing to send over Redfish
    info = await d.info(t)
    assert (info.protocol, info.firmware, info.manufacturer, info.model, info.bios) == (
        "redfish",
        "7.10.30.00",
        "Contoso",
        "R1",
        "2.1.0",
    )
    assert info.describe() == "7.10.30.00 (Contoso R1, BIOS 2.1.0)"
    assert stub.sent["10.0.0.1"] == [
        "GET system",
        "GET system",
        "Reset On",
        "GET system",
        "Reset ForceRestart",
        "GET system",
        "PATCH target=None enabled=None mode=UEFI",  # the mode first, on its own
        "GET system",
        "PATCH target=Pxe enabled=Continuous mode=None",
        "GET system",
        "GET system",
        "GET manager",
    ]
    assert stub.logins == {"10.0.0.1": 1}  # one session for them all
    await d.close()
    assert stub.closed == ["10.0.0.1"]  # logged out at the end


async def test_what_the_bmc_does_not_allow_is_unsupported_and_not_sent(stub: Stub) -> None:
    d, t = driver(stub), target(1)
    stub.systems["10.0.0.1"].json["Actions"]["#ComputerSystem.Reset"] = {
        "ResetType@Redfish.AllowableValues": ["On", "ForceOff"]
    }
    with pytest.raises(BmcUnsupported, match="allows only On, ForceOff") as info:
        await d.power(t, PowerAction.SOFT)
    assert not info.value.retryable
    stub.systems["10.0.0.1"].json["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"] = [
        "Pxe",
        "Hdd",
    ]
    with pytest.raises(BmcUnsupported, match="BiosSetup is not among Pxe, Hdd"):
        await d.set_boot_device(t, BootSetting(BootDevice.BIOS))
    assert [s for s in stub.sent["10.0.0.1"] if not s.startswith("GET")] == []
    await d.close()


async def test_one_operation_at_a_time_per_bmc_many_bmcs_at_once(stub: Stub) -> None:
    d = driver(stub, timeout=5)
    stub.hold = {"10.0.0.1", "10.0.0.2"}
    pending = [asyncio.ensure_future(d.power_status(target(n))) for n in (1, 1, 1, 2, 2)]
    for _ in range(200):  # both BMCs are busy at once ...
        if stub.active["10.0.0.1"] and stub.active["10.0.0.2"]:
            break
        await asyncio.sleep(0.01)
    assert stub.active["10.0.0.1"] == stub.active["10.0.0.2"] == 1
    stub.release.set()
    assert await asyncio.gather(*pending) == [PowerState.OFF] * 5
    assert stub.most_active == {"10.0.0.1": 1, "10.0.0.2": 1}  # ... never twice the same one
    await d.close()


async def test_deadline_then_busy_until_the_thread_ends(stub: Stub) -> None:
    d = driver(stub, timeout=0.3)
    stub.hold = {"10.0.0.1"}
    started = time.monotonic()
    with pytest.raises(BmcTimeout, match=r"did not answer within 0\.3 s"):
        await d.power_status(target(1))
    assert time.monotonic() - started < 1.0
    # The abandoned thread still has the BMC: the next operation waits, then says so.
    with pytest.raises(BmcTimeout, match=r"previous operation .* still running"):
        await d.power_status(target(1))
    stub.release.set()
    await asyncio.sleep(0.05)
    stub.hold = set()
    assert await d.power_status(target(1)) is PowerState.OFF
    await d.close()


async def test_a_bmc_that_stops_answering_loses_its_session(stub: Stub) -> None:
    d, t = driver(stub), target(1)
    assert await d.power_status(t) is PowerState.OFF
    stub.fail["10.0.0.1"] = BmcUnreachable("node1", "lost the connection")
    with pytest.raises(BmcUnreachable):
        await d.power_status(t)
    assert stub.forgotten == ["10.0.0.1"] and stub.closed == []  # nothing sent to a dead BMC
    del stub.fail["10.0.0.1"]
    assert await d.power_status(t) is PowerState.OFF  # it came back: a new login
    assert stub.logins["10.0.0.1"] == 2
    await d.close()


async def test_a_failed_step_that_is_not_the_bmcs_fault_keeps_the_session(stub: Stub) -> None:
    d, t = driver(stub), target(1)
    stub.fail["10.0.0.1"] = KeyError("Boot")  # sushy read a malformed answer
    with pytest.raises(BmcError, match=r"Redfish client failure .*\(KeyError\)") as info:
        await d.power_status(t)
    assert type(info.value) is BmcError
    assert stub.forgotten == []
    await d.close()


async def test_new_credentials_mean_a_new_session(stub: Stub) -> None:
    d = driver(stub)
    await d.power_status(target(1))
    await d.power_status(target(1, password="rotated-" + PASSWORD))
    assert stub.logins["10.0.0.1"] == 2
    assert stub.closed == ["10.0.0.1"]  # the old one logged out
    await d.close()


async def test_a_url_target_and_a_host_target(stub: Stub) -> None:
    d = driver(stub)
    plain = BmcTarget("node9", "10.0.0.9", BmcCredentials("admin", PASSWORD))
    assert plain.redfish_url == "https://10.0.0.9"
    await d.power_status(plain)
    assert d.known_protocol(plain) == "redfish"
    assert await d.detect_protocol(plain) == "redfish"
    await d.close()
