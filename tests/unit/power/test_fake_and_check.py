"""The fake driver (registered like the real one), the choke point's events, and bmc check."""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.errors import (
    BmcAuthFailed,
    BmcNotConfigured,
    BmcTimeout,
    BmcUnreachable,
    BmcUnsupported,
    ConfigError,
)
from racker.events import BmcEvent, Event
from racker.model import Inventory
from racker.power.base import (
    BmcCredentials,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
)
from racker.power.check import check_bmcs
from racker.power.drivers import DRIVERS, make_power_driver
from racker.power.fake import FakeCall, FakeDriver
from racker.rack.config import BmcConfig

from .conftest import PASSWORD


def target(n: int, credentials: BmcCredentials, host: str | None = None) -> BmcTarget:
    return BmcTarget(f"node{n}", host or f"127.0.0.{n}", credentials, mac=f"52:54:00:00:00:{n:02x}")


def test_registry_builds_the_fake_like_the_real_drivers(tmp_path: Path) -> None:
    assert set(DRIVERS) == {"auto", "redfish", "ipmi", "fake"}
    fake = make_power_driver(BmcConfig(driver="fake", timeout=3.0))
    assert isinstance(fake, FakeDriver)
    assert fake.timeout == 3.0
    for name in ("ipmi", "redfish", "auto"):
        real = make_power_driver(BmcConfig(timeout=4.0), name=name)
        assert (real.name, real.timeout) == (name, 4.0)
    assert make_power_driver(BmcConfig()).name == "auto"  # the default
    with pytest.raises(ConfigError, match="unknown power driver 'snmp'") as info:
        make_power_driver(BmcConfig(), name="snmp")
    assert info.value.hint == "known drivers: auto, fake, ipmi, redfish"
    with pytest.raises(ConfigError, match=r"bmc.verify_tls: no CA bundle at .*missing\.pem"):
        make_power_driver(BmcConfig(verify_tls=tmp_path / "missing.pem"), name="redfish")


async def test_fake_records_calls_and_keeps_state(credentials: BmcCredentials) -> None:
    events: list[Event] = []
    driver = FakeDriver(publish=events.append)
    t = target(1, credentials)
    assert await driver.power_status(t) is PowerState.OFF
    await driver.set_boot_device(t, BootSetting(BootDevice.PXE, efi=True))
    assert await driver.boot_device(t) == BootSetting(BootDevice.PXE, efi=True)
    await driver.power(t, PowerAction.ON)
    assert await driver.power_status(t) is PowerState.ON
    # The one-time override was used by that boot.
    assert (await driver.boot_device(t)).device is BootDevice.DEFAULT
    await driver.disable_boot_flag_timeout(t)
    assert driver.bmc("127.0.0.1").boot_flags_kept
    assert driver.calls[1] == FakeCall("node1", "127.0.0.1", "set_boot_device", "pxe (efi)")
    assert [c.op for c in driver.calls] == [
        "power_status",
        "set_boot_device",
        "boot_device",
        "power",
        "power_status",
        "boot_device",
        "disable_boot_flag_timeout",
    ]
    bmc_events = [e for e in events if isinstance(e, BmcEvent)]
    assert [e.action for e in bmc_events][:4] == [
        "power-status",
        "bootdev-pxe",
        "bootdev-get",
        "power-on",
    ]
    assert all(e.ok and e.node == "node1" and e.mac == t.mac for e in bmc_events)


async def test_fake_state_file_spans_driver_instances(
    tmp_path: Path, credentials: BmcCredentials
) -> None:
    first = make_power_driver(BmcConfig(driver="fake"), state_dir=tmp_path)
    await first.power(target(2, credentials), PowerAction.ON)
    await first.set_boot_device(target(2, credentials), BootSetting(BootDevice.DISK, True))
    second = make_power_driver(BmcConfig(driver="fake"), state_dir=tmp_path)
    assert await second.power_status(target(2, credentials)) is PowerState.ON
    assert await second.boot_device(target(2, credentials)) == BootSetting(BootDevice.DISK, True)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ({"reachable": False}, BmcUnreachable),
        ({"password": "other"}, BmcAuthFailed),
        ({"delay": 5.0}, BmcTimeout),
        ({"unsupported": frozenset({"power_status"})}, BmcUnsupported),
    ],
)
async def test_fake_faults_are_typed_and_published(
    credentials: BmcCredentials, fault: dict[str, object], error: type[Exception]
) -> None:
    events: list[Event] = []
    driver = FakeDriver(timeout=0.05, publish=events.append)
    for key, value in fault.items():
        setattr(driver.bmc("127.0.0.3"), key, value)
    with pytest.raises(error) as info:
        await driver.power_status(target(3, credentials))
    assert str(info.value).startswith("node3: ")
    assert PASSWORD not in str(info.value)
    [event] = events
    assert isinstance(event, BmcEvent)
    assert not event.ok
    assert event.error == str(info.value)


async def test_validate_refuses_before_contacting_the_bmc() -> None:
    driver = FakeDriver()
    with pytest.raises(BmcAuthFailed, match="no BMC user name or password"):
        await driver.power_status(target(4, BmcCredentials("admin", "")))
    with pytest.raises(BmcNotConfigured, match="no BMC address"):
        driver.validate(BmcTarget("node5", "", BmcCredentials("a", "b")))
    assert driver.calls == []


def test_credentials_never_show_the_password(credentials: BmcCredentials) -> None:
    t = target(1, credentials)
    for text in (repr(credentials), str(credentials), repr(t), str(t), f"{t}"):
        assert PASSWORD not in text
    assert "admin" in repr(t)
    assert credentials.reveal() == PASSWORD
    assert credentials == BmcCredentials("admin", PASSWORD)
    assert credentials != BmcCredentials("admin", "x")


async def test_bmc_check_rows(inventory: Inventory, credentials: BmcCredentials) -> None:
    driver = FakeDriver(timeout=0.05)
    driver.bmc("127.0.0.2").power = PowerState.ON
    driver.bmc("127.0.0.2").boot = BootSetting(BootDevice.PXE, persistent=True)
    driver.bmc("127.0.0.3").password = "different"  # noqa: S105
    driver.bmc("127.0.0.4").reachable = False
    driver.bmc("127.0.0.5").unsupported = frozenset({"boot_device"})
    nodes = inventory.nodes
    entries = [
        (nodes[1], target(2, credentials)),
        (nodes[2], target(3, credentials)),
        (nodes[3], target(4, credentials)),
        (nodes[0], BmcNotConfigured("mgmt-000001", "no address allocated", "run racker serve")),
        (nodes[3], target(5, credentials)),
    ]
    rows = await check_bmcs(driver, entries)
    summary = [(r.node, r.reachable, r.credentials, r.power, r.boot, r.ok) for r in rows]
    assert summary == [
        ("controller-000002", True, True, "on", "pxe (persistent)", True),
        ("worker-000003", True, False, "", "", False),
        ("worker-000004", False, None, "", "", False),
        ("mgmt-000001", None, None, "", "", False),
        ("worker-000004", True, True, "off", "unsupported", True),
    ]
    assert rows[0].firmware == "1.00"
    assert [r.protocol for r in rows] == ["fake", "fake", "fake", "", "fake"]
    assert rows[1].hint.startswith("check the OEM files")
    assert rows[3].hint == "run racker serve"
    assert rows[0].to_dict()["ok"] is True
    assert all(PASSWORD not in str(r.to_dict()) for r in rows)
