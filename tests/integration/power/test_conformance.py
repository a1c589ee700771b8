"""One conformance suite for the PowerDriver interface, run against every driver and a real peer
for each: the fake (in memory), IPMI against OpenIPMI's ipmi_sim, Redfish against sushy-tools'
emulator. The drivers cannot drift apart: the same calls, the same typed errors, the same
guarantees (deadline, other BMCs not held up, one event per operation).

Where a peer itself differs, its ``Backend`` says so (``readback``, ``refuses``): ipmi_sim
drops the boot flags' valid bit (reads say "default"); the emulator keeps every override
Continuous, turns UefiHttp without a URI into Pxe, lists no BiosSetup target and refuses
``BootSourceOverrideEnabled: Disabled`` on its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from racker.errors import BmcAuthFailed, BmcError, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.events import BmcEvent, Event, Publish
from racker.power.base import (
    BmcCredentials,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)
from racker.power.fake import FakeDriver
from racker.power.ipmi import IpmiDriver
from racker.power.redfish import RedfishDriver
from tests.support.bmcsim import BmcSim
from tests.support.redfish import RedfishLab, free_port
from tests.support.redfish import available as redfish_available

PASSWORD = "Conf0rmance-PW"  # noqa: S105 - the fake's; the real peers make their own


@dataclass
class Backend:
    protocol: str
    make: Callable[[float, Publish], PowerDriver]
    healthy: list[BmcTarget]  # two BMCs that answer
    silent: BmcTarget  # nobody answers there
    stall: Callable[[BmcTarget], None]  # that BMC stops answering for a while
    unstall: Callable[[BmcTarget], None]
    readback: Callable[[BootSetting], BootSetting] = lambda s: s
    refuses: frozenset[BootDevice] = frozenset()
    password: str = PASSWORD
    cleanup: list[Callable[[], None]] = field(default_factory=list)

    def wrong_password(self) -> BmcTarget:
        t = self.healthy[0]
        return dataclasses.replace(t, credentials=BmcCredentials(t.credentials.user, "not-it"))


def fake_backend(_tmp: Path) -> Backend:
    shared = FakeDriver()  # every driver the test makes sees the same fake BMCs

    def make(timeout: float, publish: Publish) -> PowerDriver:
        driver = FakeDriver(timeout=timeout, publish=publish)
        driver.bmcs = shared.bmcs
        return driver

    creds = BmcCredentials("admin", PASSWORD)
    healthy = [BmcTarget(f"fake{n}", f"127.0.9.{n}", creds) for n in (1, 2)]
    for t in healthy:
        shared.bmc(t.host).password = PASSWORD
    silent = BmcTarget("silent", "127.0.9.250", creds)
    shared.bmc(silent.host).reachable = False
    return Backend(
        "fake",
        make,
        healthy,
        silent,
        stall=lambda t: setattr(shared.bmc(t.host), "delay", 30.0),
        unstall=lambda t: setattr(shared.bmc(t.host), "delay", 0.0),
    )


def ipmi_backend(tmp: Path) -> Backend:
    if shutil.which("ipmi_sim") is None:
        pytest.skip("ipmi_sim is not installed (Debian package openipmi)")
    sim = BmcSim(tmp / "ipmi")
    bmcs = sim.start(2)
    by_host = {b.host: b for b in bmcs}
    healthy = [BmcTarget(b.name, b.host, BmcCredentials(b.user, b.password), b.port) for b in bmcs]
    silent = BmcTarget("silent", "127.0.6.250", healthy[0].credentials)
    return Backend(
        "ipmi",
        lambda timeout, publish: IpmiDriver(timeout=timeout, publish=publish),
        healthy,
        silent,
        stall=lambda t: by_host[t.host].freeze(),
        unstall=lambda t: by_host[t.host].thaw(),
        readback=lambda _s: BootSetting(BootDevice.DEFAULT),  # ipmi_sim drops the valid bit
        refuses=frozenset({BootDevice.HTTP}),
        password=sim.password,
        cleanup=[sim.stop_all],
    )


def redfish_backend(tmp: Path) -> Backend:
    why = redfish_available()
    if why:
        pytest.skip(why)
    lab = RedfishLab(tmp / "redfish")
    bmcs = [lab.start(), lab.start()]
    by_port = {b.port: b for b in bmcs}
    creds = BmcCredentials(lab.user, lab.password)
    healthy = [BmcTarget(b.name, b.host, creds, b.port, scheme="http") for b in bmcs]
    silent = BmcTarget("silent", "127.0.0.1", creds, free_port(), scheme="http")

    def readback(setting: BootSetting) -> BootSetting:
        device = BootDevice.PXE if setting.device is BootDevice.HTTP else setting.device
        return BootSetting(device, persistent=True, efi=setting.efi)

    return Backend(
        "redfish",
        lambda timeout, publish: RedfishDriver(timeout=timeout, publish=publish),
        healthy,
        silent,
        stall=lambda t: by_port[t.port].freeze(),
        unstall=lambda t: by_port[t.port].thaw(),
        readback=readback,
        refuses=frozenset({BootDevice.BIOS, BootDevice.DEFAULT}),
        password=lab.password,
        cleanup=[lab.stop_all],
    )


@pytest.fixture(
    params=[
        pytest.param(fake_backend, id="fake"),
        pytest.param(ipmi_backend, id="ipmi_sim", marks=pytest.mark.root),
        pytest.param(redfish_backend, id="redfish-emulator"),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    made: Backend = request.param(tmp_path)
    try:
        yield made
    finally:
        for stop in made.cleanup:
            stop()


@pytest.fixture
def events() -> list[Event]:
    return []


@pytest.fixture
async def driver(backend: Backend, events: list[Event]) -> PowerDriver:
    return backend.make(5.0, events.append)


async def eventually(driver: PowerDriver, target: BmcTarget, state: PowerState) -> None:
    for _ in range(50):
        if await driver.power_status(target) is state:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{target.node} never reported power {state}")


async def test_power_on_off_and_status(backend: Backend, driver: PowerDriver) -> None:
    t = backend.healthy[0]
    await driver.power(t, PowerAction.OFF)
    await eventually(driver, t, PowerState.OFF)
    await driver.power(t, PowerAction.ON)
    await eventually(driver, t, PowerState.ON)
    for action in (PowerAction.CYCLE, PowerAction.RESET, PowerAction.SOFT):
        await driver.power(t, action)  # accepted: what follows is the machine's business
    await driver.power(t, PowerAction.OFF)
    await eventually(driver, t, PowerState.OFF)
    await driver.close()


SETTINGS = [
    BootSetting(BootDevice.PXE, efi=True),
    BootSetting(BootDevice.PXE, persistent=True),
    BootSetting(BootDevice.DISK, persistent=True, efi=True),
    BootSetting(BootDevice.BIOS, efi=True),
    BootSetting(BootDevice.HTTP),
    BootSetting(BootDevice.DEFAULT),
]


async def test_boot_overrides_set_read_or_refused_as_unsupported(
    backend: Backend, driver: PowerDriver
) -> None:
    t = backend.healthy[0]
    for setting in SETTINGS:
        if setting.device in backend.refuses:
            with pytest.raises(BmcUnsupported) as info:
                await driver.set_boot_device(t, setting)
            assert not info.value.retryable, setting
            continue
        await driver.set_boot_device(t, setting)
        assert await driver.boot_device(t) == backend.readback(setting), setting
    await driver.disable_boot_flag_timeout(t)
    await driver.close()


async def test_info_and_protocol(backend: Backend, driver: PowerDriver) -> None:
    t = backend.healthy[0]
    info = await driver.info(t)
    assert info.protocol == backend.protocol
    assert info.firmware and info.describe().startswith(info.firmware)
    assert driver.known_protocol(t) == backend.protocol
    assert await driver.detect_protocol(t) == backend.protocol
    await driver.close()


async def test_wrong_password(
    backend: Backend, driver: PowerDriver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BmcAuthFailed) as info:
        await driver.power_status(backend.wrong_password())
    assert not info.value.retryable and info.value.hint
    for text in (str(info.value), repr(info.value), info.value.hint or "", caplog.text):
        assert backend.password not in text and "not-it" not in text
    assert await driver.power_status(backend.healthy[0]) in (PowerState.ON, PowerState.OFF)
    await driver.close()


@pytest.mark.slow
async def test_nobody_there_is_unreachable_within_the_deadline(backend: Backend) -> None:
    driver = backend.make(2.0, lambda _e: None)
    started = time.monotonic()
    with pytest.raises(BmcUnreachable) as info:
        await driver.power_status(backend.silent)
    assert time.monotonic() - started < 3.0
    assert info.value.retryable and info.value.hint
    await driver.close()


@pytest.mark.slow
async def test_a_stalled_bmc_holds_up_no_other(backend: Backend) -> None:
    driver = backend.make(1.5, lambda _e: None)
    stalled, healthy = backend.healthy
    await driver.power_status(stalled)  # logged in (where there are sessions), then ...
    backend.stall(stalled)  # ... it stops answering
    try:
        started = time.monotonic()
        slow = asyncio.ensure_future(driver.power_status(stalled))
        await asyncio.sleep(0)
        fast = asyncio.ensure_future(driver.power_status(healthy))
        done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
        assert done == {fast}, "a healthy BMC waited for a stalled one"
        with pytest.raises(BmcError) as info:
            await slow
        assert type(info.value) in (BmcTimeout, BmcUnreachable)
        assert info.value.retryable
        assert time.monotonic() - started < 2.5
    finally:
        backend.unstall(stalled)
    for _ in range(5):  # the abandoned thread may still hold the BMC for a moment
        try:
            await driver.power_status(stalled)
            break
        except BmcTimeout:
            await asyncio.sleep(0.3)
    else:
        pytest.fail("the BMC did not answer again")
    await driver.close()


async def test_one_event_per_operation(
    backend: Backend, driver: PowerDriver, events: list[Event]
) -> None:
    t = backend.healthy[0]
    await driver.power_status(t)
    await driver.power(t, PowerAction.ON)
    await driver.set_boot_device(t, BootSetting(BootDevice.PXE, efi=True))
    with pytest.raises(BmcAuthFailed):
        await driver.info(backend.wrong_password())
    bmc_events = [e for e in events if isinstance(e, BmcEvent)]
    assert [(e.node, e.action, e.ok) for e in bmc_events] == [
        (t.node, "power-status", True),
        (t.node, "power-on", True),
        (t.node, "bootdev-pxe", True),
        (t.node, "info", False),
    ]
    assert all(e.duration >= 0 for e in bmc_events)
    assert "rejected" in bmc_events[-1].error
    await driver.close()
