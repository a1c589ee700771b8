"""The IPMI driver against real BMC implementations: OpenIPMI's ipmi_sim and pyghmi's fake
BMC, cross-checked with ipmitool. What the BMC did is read from its chassis program's log.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from racker.errors import BmcAuthFailed, BmcNotConfigured
from racker.model import Node
from racker.power.base import BmcInfo, BootDevice, BootSetting, PowerAction, PowerState
from racker.power.check import check_bmcs
from racker.power.console import ipmitool_command
from racker.power.ipmi import IpmiDriver
from racker.power.pyghmi_client import evict
from tests.support.bmcsim import BmcSim, SimBmc

from .conftest import target

pytestmark = pytest.mark.root


def ipmitool(bmc: SimBmc, *args: str) -> str:
    if shutil.which("ipmitool") is None:
        pytest.skip("ipmitool is not installed")
    argv, extra = ipmitool_command(target(bmc), *args)
    assert bmc.password not in " ".join(argv)
    done = subprocess.run(
        argv, env={**os.environ, **extra}, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout.strip()


# What ipmi_sim passes to its chassis program for each action (its own words).
@pytest.mark.parametrize(
    ("action", "recorded"),
    [
        (PowerAction.ON, "set power 1"),
        (PowerAction.OFF, "set power 0"),
        (PowerAction.RESET, "set reset 1"),
        (PowerAction.SOFT, "set shutdown 1"),
        (PowerAction.CYCLE, "set power 0"),  # ipmi_sim powers back on later by itself
    ],
)
async def test_power_actions_reach_the_chassis(
    sim: BmcSim, action: PowerAction, recorded: str
) -> None:
    [bmc] = sim.start(1)
    bmc.set_power(True)
    driver = IpmiDriver(timeout=5)
    await driver.power(target(bmc), action)
    assert recorded in bmc.calls()
    await driver.close()


async def test_power_state_agrees_with_ipmitool(sim: BmcSim) -> None:
    [bmc] = sim.start(1)
    driver = IpmiDriver(timeout=5)
    assert await driver.power_status(target(bmc)) is PowerState.OFF
    await driver.power(target(bmc), PowerAction.ON)
    assert ipmitool(bmc, "chassis", "power", "status") == "Chassis Power is on"
    ipmitool(bmc, "chassis", "power", "off")
    assert await driver.power_status(target(bmc)) is PowerState.OFF
    assert bmc.power == "0"
    # One session per operation, logged out at the end: nothing stays cached in pyghmi.
    assert evict(bmc.host, bmc.port) == 0
    await driver.close()


@pytest.mark.parametrize(
    ("setting", "recorded"),
    [
        (BootSetting(BootDevice.PXE), "set boot pxe"),
        (BootSetting(BootDevice.PXE, persistent=True, efi=True), "set boot pxe"),
        (BootSetting(BootDevice.DISK), "set boot default"),  # ipmi_sim's word for the disk
        (BootSetting(BootDevice.BIOS), "set boot bios"),
        (BootSetting(BootDevice.DEFAULT), "set boot none"),
    ],
)
async def test_boot_device_reaches_the_chassis(
    sim: BmcSim, setting: BootSetting, recorded: str
) -> None:
    [bmc] = sim.start(1)
    driver = IpmiDriver(timeout=5)
    await driver.set_boot_device(target(bmc), setting)
    assert bmc.calls()[-1] == recorded
    # ipmi_sim drops the flags' valid bit (see tests/support/bmcsim.py): reads say default.
    assert (await driver.boot_device(target(bmc))).device is BootDevice.DEFAULT
    await driver.close()


async def test_bootdev_matches_what_ipmitool_does(sim: BmcSim) -> None:
    ours, theirs = sim.start(2)
    driver = IpmiDriver(timeout=5)
    await driver.set_boot_device(target(ours), BootSetting(BootDevice.PXE))
    await driver.disable_boot_flag_timeout(target(ours))
    ipmitool(theirs, "chassis", "bootdev", "pxe")
    assert [c for c in ours.calls() if c.startswith("set")] == ["set boot pxe"]
    assert [c for c in theirs.calls() if c.startswith("set")] == ["set boot pxe"]
    await driver.close()


async def test_bmc_info_from_get_device_id(sim: BmcSim) -> None:
    [bmc] = sim.start(1)
    driver = IpmiDriver(timeout=5)
    assert await driver.info(target(bmc)) == BmcInfo(0, 3, "9.08", "2.0", 0x1291, 0xF02)
    assert "Manufacturer ID           : 4753" in ipmitool(bmc, "mc", "info")
    await driver.close()


async def test_pyghmi_fake_bmc_after_sha256_fallback(sim: BmcSim) -> None:
    bmc = sim.add_pyghmi_bmc()
    bmc.start()
    driver = IpmiDriver(timeout=5)
    t = target(bmc)
    assert await driver.power_status(t) is PowerState.OFF
    await driver.power(t, PowerAction.ON)
    await driver.set_boot_device(t, BootSetting(BootDevice.PXE, efi=True))
    # pyghmi's fake keeps the override, so here the read-back is real.
    assert (await driver.boot_device(t)).device is BootDevice.PXE
    assert await driver.power_status(t) is PowerState.ON
    assert bmc.calls()[:4] == ["get power", "set power 1", "set boot network", "get boot"]
    with pytest.raises(BmcAuthFailed):
        await driver.power_status(target(bmc, password="not-the-password"))  # noqa: S106
    await driver.close()


def _node(i: int) -> Node:
    return Node(i + 1, i, f"52:54:00:00:06:{i:02x}", f"52:54:00:00:07:{i:02x}", None, "worker")


async def test_bmc_check_over_real_bmcs(sim: BmcSim) -> None:
    good = sim.start(2)
    wrong = sim.add_ipmi_sim(password="another-password")  # noqa: S106
    wrong.start()
    good[1].set_power(True)
    # 5 s, not 2: after the simulated-rack tests, a BMC that rejects the password answered
    # too late once (reported unreachable instead of "rejected the credentials").
    driver = IpmiDriver(timeout=5)
    missing = BmcNotConfigured("worker-000005", "no address allocated", "run racker serve")
    silent = target(good[0])
    silent = type(silent)("silent", "127.0.6.254", silent.credentials)
    rows = await check_bmcs(
        driver,
        [
            (_node(1), target(good[0])),
            (_node(2), target(good[1])),
            (_node(3), target(wrong, password=good[0].password)),
            (_node(4), silent),
            (_node(5), missing),
        ],
    )
    summary = [(r.reachable, r.credentials, r.power, r.boot) for r in rows]
    assert summary == [
        (True, True, "off", "default"),
        (True, True, "on", "default"),
        (True, False, "", ""),
        (False, None, "", ""),
        (None, None, "", ""),
    ], [r.error for r in rows]
    assert rows[0].firmware == "9.08 (IANA 4753)"
    assert "rejected the credentials" in rows[2].error
    assert "no answer" in rows[3].error
    await driver.close()
