"""Faults against real BMCs: each gives its typed error within its deadline, and the other
BMCs are not held up. "Not held up" is checked by order of completion, not by timing.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from racker.errors import BmcAuthFailed, BmcError, BmcTimeout, BmcUnreachable
from racker.power.base import BmcTarget, PowerAction, PowerState
from racker.power.ipmi import IpmiDriver
from racker.power.pyghmi_client import evict
from tests.support.bmcsim import BmcSim, SimBmc, udp_bound

from .conftest import target

pytestmark = [pytest.mark.root, pytest.mark.slow]

SILENT = "127.0.6.250"


async def first_done(slow: asyncio.Future[object], fast: asyncio.Future[object]) -> None:
    done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {fast}, "a healthy BMC waited for a faulty one"
    assert await fast is PowerState.OFF


def wait_for_call(bmc: SimBmc, count: int) -> None:
    """Until the BMC's chassis program has been called ``count`` times (it logs, then sleeps)."""
    for _ in range(500):
        if len(bmc.calls()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{bmc.name} was never asked: {bmc.calls()}")


@pytest.mark.parametrize("timeout", [2.0, 8.0], ids=["our-deadline", "pyghmi-gives-up-first"])
async def test_unreachable_bmc(sim: BmcSim, timeout: float) -> None:
    assert not udp_bound(SILENT, 623)
    [healthy] = sim.start(1)
    driver = IpmiDriver(timeout=timeout)
    silent = BmcTarget("silent", SILENT, target(healthy).credentials)
    slow = asyncio.ensure_future(driver.power_status(silent))
    await asyncio.sleep(0)
    await first_done(slow, asyncio.ensure_future(driver.power_status(target(healthy))))
    with pytest.raises(BmcUnreachable, match=r"no answer from the BMC at 127\.0\.6\.250") as info:
        await slow
    assert info.value.retryable
    assert "UDP port 623" in (info.value.hint or "")
    await driver.close()


async def test_wrong_password_never_shows_a_password(
    sim: BmcSim, caplog: pytest.LogCaptureFixture
) -> None:
    [bmc] = sim.start(1)
    wrong = "Wr0ng-" + bmc.password
    caplog.set_level(logging.DEBUG)
    driver = IpmiDriver(timeout=5)
    with pytest.raises(BmcAuthFailed, match="rejected the credentials") as info:
        await driver.power(target(bmc, password=wrong), PowerAction.ON)
    assert not info.value.retryable
    texts = [str(info.value), repr(info.value), info.value.hint or "", caplog.text]
    for secret in (wrong, bmc.password):
        assert all(secret not in text for text in texts)
    assert "set power 1" not in bmc.calls()
    # The refused login left nothing cached: the right password works at once.
    await driver.power(target(bmc), PowerAction.ON)
    assert bmc.power == "1"
    await driver.close()


async def test_bmc_killed_mid_session_then_restarted(sim: BmcSim) -> None:
    dying, healthy = sim.start(2)
    driver = IpmiDriver(timeout=2)
    assert await driver.power_status(target(dying)) is PowerState.OFF
    dying.set_delay(5)  # the next request stalls inside the BMC ...
    asked = len(dying.calls())
    pending = asyncio.ensure_future(driver.power(target(dying), PowerAction.ON))
    await asyncio.to_thread(wait_for_call, dying, asked + 1)
    dying.kill()  # ... and the BMC dies while the session waits for the reply.
    await first_done(pending, asyncio.ensure_future(driver.power_status(target(healthy))))
    with pytest.raises(BmcTimeout, match="stopped answering") as info:
        await pending
    assert info.value.retryable
    dying.set_delay(0)
    dying.start()
    # Recovered without restarting racker: a fresh session, not pyghmi's cached dead one.
    await driver.power(target(dying), PowerAction.ON)
    assert await driver.power_status(target(dying)) is PowerState.ON
    assert evict(dying.host, dying.port) == 0
    await driver.close()


async def test_bmc_restarted_between_operations(sim: BmcSim) -> None:
    [bmc] = sim.start(1)
    driver = IpmiDriver(timeout=3)
    await driver.power(target(bmc), PowerAction.ON)
    bmc.kill()
    bmc.start()
    assert await driver.power_status(target(bmc)) is PowerState.ON
    await driver.close()


async def test_frozen_bmc_times_out_and_recovers_when_thawed(sim: BmcSim) -> None:
    frozen, healthy = sim.start(2)
    driver = IpmiDriver(timeout=1.5)
    frozen.freeze()
    try:
        pending = asyncio.ensure_future(driver.power_status(target(frozen)))
        await asyncio.sleep(0)
        await first_done(pending, asyncio.ensure_future(driver.power_status(target(healthy))))
        with pytest.raises(BmcError) as info:  # no reply even to the login
            await pending
        assert type(info.value) in (BmcUnreachable, BmcTimeout)
    finally:
        frozen.thaw()
    for _ in range(3):  # the abandoned thread may still hold the BMC for a moment
        try:
            assert await driver.power_status(target(frozen)) is PowerState.OFF
            break
        except BmcTimeout:
            continue
    else:
        pytest.fail("the BMC did not recover after it was thawed")
    await driver.close()


async def test_slow_bmc_times_out_without_holding_up_others(sim: BmcSim) -> None:
    slow_bmc, healthy = sim.start(2)
    slow_bmc.set_delay(4)
    driver = IpmiDriver(timeout=1.5)
    pending = asyncio.ensure_future(driver.power_status(target(slow_bmc)))
    await asyncio.sleep(0)
    await first_done(pending, asyncio.ensure_future(driver.power_status(target(healthy))))
    with pytest.raises(BmcTimeout, match=r"stopped answering; gave up after 1\.5 s"):
        await pending
    slow_bmc.set_delay(0)
    driver.timeout = 10  # wait out the stalled request still inside the BMC
    assert await driver.power_status(target(slow_bmc)) is PowerState.OFF
    await driver.close()
