"""The Redfish driver against sushy-tools' emulator (``sushy-emulator --fake``), one process per
BMC on 127.0.0.1. What the BMC did is read from its request log and from its own resources,
fetched past racker (``RedfishBmc.calls``/``system``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from racker.errors import (
    BmcAuthFailed,
    BmcNotConfigured,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
    BmcUnsupported,
)
from racker.model import Node
from racker.power.base import BmcTarget, BootDevice, BootSetting, PowerAction, PowerState
from racker.power.check import check_bmcs
from racker.power.redfish import RedfishDriver
from tests.support.redfish import FAKE_SYSTEM, RedfishBmc, RedfishLab

from .conftest import redfish_target

RESET = f"POST {FAKE_SYSTEM}/Actions/ComputerSystem.Reset"


def posted(bmc: RedfishBmc, prefix: str) -> list[str]:
    return [c.removeprefix(prefix).strip() for c in bmc.calls() if c.startswith(prefix)]


async def test_power_actions_pick_the_reset_types_the_emulator_allows(lab: RedfishLab) -> None:
    bmc = lab.start()
    driver = RedfishDriver(timeout=5)
    t = redfish_target(bmc)
    assert await driver.power_status(t) is PowerState.OFF
    await driver.power(t, PowerAction.ON)
    assert bmc.system()["PowerState"] == "On"
    assert await driver.power_status(t) is PowerState.ON
    for action in (PowerAction.CYCLE, PowerAction.RESET, PowerAction.SOFT, PowerAction.OFF):
        await driver.power(t, action)
    assert bmc.system()["PowerState"] == "Off"
    assert posted(bmc, RESET) == [
        '{"ResetType": "On"}',
        '{"ResetType": "ForceRestart"}',  # cycle: the emulator has no PowerCycle
        '{"ResetType": "ForceRestart"}',
        '{"ResetType": "GracefulShutdown"}',
        '{"ResetType": "ForceOff"}',
    ]
    await driver.close()


async def test_boot_overrides_reach_the_emulator(lab: RedfishLab) -> None:
    bmc = lab.start()
    driver = RedfishDriver(timeout=5)
    t = redfish_target(bmc)
    boot = f"PATCH {FAKE_SYSTEM}"

    await driver.set_boot_device(t, BootSetting(BootDevice.PXE, efi=True))
    assert bmc.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    # The emulator keeps every override "Continuous" (its README says so): read back as such.
    assert await driver.boot_device(t) == BootSetting(BootDevice.PXE, persistent=True, efi=True)

    await driver.set_boot_device(t, BootSetting(BootDevice.DISK, persistent=True))  # legacy
    assert bmc.system()["Boot"]["BootSourceOverrideMode"] == "Legacy"
    await driver.set_boot_device(t, BootSetting(BootDevice.HTTP))  # back to UEFI first
    assert posted(bmc, boot) == [
        '{"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe", '
        '"HttpBootUri": null}}',
        '{"Boot": {"BootSourceOverrideMode": "Legacy"}}',
        '{"Boot": {"BootSourceOverrideEnabled": "Continuous", "BootSourceOverrideTarget": "Hdd"}}',
        '{"Boot": {"BootSourceOverrideMode": "UEFI"}}',
        '{"Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": '
        '"UefiHttp", "HttpBootUri": null}}',
    ]
    assert bmc.system()["Boot"]["BootSourceOverrideMode"] == "UEFI"

    # BiosSetup is not among the emulator's allowable targets: refused before any PATCH.
    calls = len(bmc.calls())
    with pytest.raises(BmcUnsupported, match="BiosSetup is not among Pxe, Cd, Hdd, UefiHttp"):
        await driver.set_boot_device(t, BootSetting(BootDevice.BIOS, efi=True))
    assert not posted(bmc, boot)[5:] and len(bmc.calls()) > calls
    # "No override" is BootSourceOverrideEnabled: Disabled; this emulator refuses it (400).
    with pytest.raises(BmcUnsupported, match="HTTP 400"):
        await driver.set_boot_device(t, BootSetting(BootDevice.DEFAULT))
    await driver.disable_boot_flag_timeout(t)  # nothing to do over Redfish, and no error
    await driver.close()


async def test_info_names_the_maker_and_the_bmc_firmware(lab: RedfishLab) -> None:
    bmc = lab.start()
    driver = RedfishDriver(timeout=5)
    info = await driver.info(redfish_target(bmc))
    assert (info.protocol, info.firmware, info.manufacturer) == (
        "redfish",
        "1.00",
        "Sushy Emulator",
    )
    assert info.describe() == "1.00 (Sushy Emulator)"
    await driver.close()


async def test_wrong_password_is_an_authentication_error_without_the_password(
    lab: RedfishLab, caplog: pytest.LogCaptureFixture
) -> None:
    bmc = lab.start()
    wrong = "Wr0ng-" + bmc.password
    caplog.set_level(logging.DEBUG)  # racker's -vv: sushy's request log included
    driver = RedfishDriver(timeout=5)
    with pytest.raises(BmcAuthFailed, match="rejected the credentials") as info:
        await driver.power(redfish_target(bmc, password=wrong), PowerAction.ON)
    assert not info.value.retryable
    assert "sushy.connector" in caplog.text  # the debug output was there to leak into
    for secret in (wrong, bmc.password):
        for text in (str(info.value), repr(info.value), info.value.hint or "", caplog.text):
            assert secret not in text
    # Basic auth sends base64(user:password): neither the right nor the wrong one shows.
    for password in (wrong, bmc.password):
        token = base64.b64encode(f"{bmc.user}:{password}".encode()).decode()
        assert token not in caplog.text
    assert posted(bmc, RESET) == []
    # Nothing of the refused login stays: the right password works at once.
    await driver.power(redfish_target(bmc), PowerAction.ON)
    assert posted(bmc, RESET) == ['{"ResetType": "On"}']
    await driver.close()


async def test_sessions_tokens_stay_out_of_the_debug_output(
    lab: RedfishLab, caplog: pytest.LogCaptureFixture
) -> None:
    bmc = lab.start(sessions=True)
    caplog.set_level(logging.DEBUG)
    driver = RedfishDriver(timeout=5)
    t = redfish_target(bmc)
    assert await driver.power_status(t) is PowerState.OFF
    await driver.power(t, PowerAction.ON)
    assert bmc.sessions() == 1  # one session for both operations
    assert "(session auth)" in caplog.text
    from racker.power.redact import REDACT

    tokens = [s for s in REDACT._secrets if s not in (bmc.password,) and len(s) == 32]
    assert tokens, "the session token was registered for redaction"
    assert all(token not in caplog.text for token in tokens)
    assert bmc.password not in caplog.text
    await driver.close()
    assert bmc.sessions() == 0  # logged out


async def test_patch_carries_the_etag_a_bmc_requires(lab: RedfishLab) -> None:
    bmc = lab.start(require_etag=True)
    # Without If-Match this BMC refuses a PATCH (so the test below can fail):
    request = urllib.request.Request(  # noqa: S310 - http only
        bmc.url + FAKE_SYSTEM, method="PATCH", data=b'{"Boot": {"BootSourceOverrideMode": "UEFI"}}'
    )
    request.add_header("Authorization", "Basic " + _basic(bmc))
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)  # noqa: S310
    assert refused.value.code == 428
    refused.value.close()  # the error holds the connection
    driver = RedfishDriver(timeout=5)
    await driver.set_boot_device(redfish_target(bmc), BootSetting(BootDevice.PXE))
    assert bmc.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    await driver.close()


def _basic(bmc: RedfishBmc) -> str:
    return base64.b64encode(f"{bmc.user}:{bmc.password}".encode()).decode()


TWO_SYSTEMS = [
    {
        "uuid": "11111111-0000-4000-8000-000000000001",
        "name": "blade-a",
        "power_state": "Off",
        "nics": [{"mac": "52:54:00:aa:00:01", "ip": "10.0.0.1"}],
    },
    {
        "uuid": "11111111-0000-4000-8000-000000000002",
        "name": "blade-b",
        "power_state": "Off",
        "nics": [{"mac": "52:54:00:bb:00:01", "ip": "10.0.0.2"}],
    },
]


async def test_of_several_systems_the_one_with_the_nodes_mac(lab: RedfishLab) -> None:
    bmc = lab.start(systems=TWO_SYSTEMS)
    driver = RedfishDriver(timeout=5)
    blade_b = redfish_target(bmc, mac="52:54:00:BB:00:01", node_macs=("52-54-00-bb-00-01",))
    await driver.power(blade_b, PowerAction.ON)
    b_path = "/redfish/v1/Systems/11111111-0000-4000-8000-000000000002"
    assert posted(bmc, f"POST {b_path}/Actions/ComputerSystem.Reset") == ['{"ResetType": "On"}']
    assert bmc.system(b_path)["PowerState"] == "On"
    a_path = "/redfish/v1/Systems/11111111-0000-4000-8000-000000000001"
    assert bmc.system(a_path)["PowerState"] == "Off"
    stranger = redfish_target(bmc, mac="52:54:00:cc:00:01")
    stranger = BmcTarget(
        "stranger", bmc.host, stranger.credentials, bmc.port, stranger.mac, "http", ()
    )
    with pytest.raises(BmcNotConfigured, match=r"none of the 2 systems .*\(52:54:00:cc:00:01\)"):
        await driver.power(stranger, PowerAction.ON)
    await driver.close()


@pytest.mark.slow
async def test_certificates_are_checked_as_bmc_verify_tls_says(tls_lab: RedfishLab) -> None:
    bmc = tls_lab.start()
    t = redfish_target(bmc)
    assert t.redfish_url.startswith("https://")
    before = len(bmc.calls())  # the lab's own readiness checks
    with pytest.raises(BmcTlsError, match=r"certificate .* failed verification") as info:
        await RedfishDriver(timeout=5, verify_tls=True).power_status(t)
    assert "bmc.verify_tls" in (info.value.hint or "")
    assert len(bmc.calls()) == before  # nothing was sent past the handshake
    for verify in (tls_lab.ca, False):
        driver = RedfishDriver(timeout=5, verify_tls=verify)
        assert await driver.power_status(t) is PowerState.OFF
        await driver.close()


def _node(i: int) -> Node:
    return Node(i + 1, i, f"52:54:00:00:08:{i:02x}", f"52:54:00:00:09:{i:02x}", None, "worker")


@pytest.mark.slow
async def test_bmc_check_over_emulated_redfish_bmcs(lab: RedfishLab) -> None:
    good, other = lab.start(), lab.start()
    dead = lab.add()  # never started: its port refuses
    driver = RedfishDriver(timeout=5)
    rows = await check_bmcs(
        driver,
        [
            (_node(1), redfish_target(good)),
            (_node(2), redfish_target(other, password="not-it")),  # noqa: S106
            (_node(3), redfish_target(dead)),
        ],
    )
    summary = [(r.reachable, r.credentials, r.power, r.boot, r.protocol) for r in rows]
    assert summary == [
        (True, True, "off", "disk (persistent, efi)", "redfish"),
        (True, False, "", "", "redfish"),
        (False, None, "", "", "redfish"),
    ], [r.error for r in rows]
    assert rows[0].firmware == "1.00 (Sushy Emulator)"
    assert "refused the connection" in rows[2].error
    await driver.close()


# -- faults: each gives its typed error within its deadline; other BMCs are not held up ---


async def first_done(slow: asyncio.Future[object], fast: asyncio.Future[object]) -> None:
    done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {fast}, "a healthy BMC waited for a faulty one"
    assert await fast is PowerState.OFF


def wait_for_call(bmc: RedfishBmc, count: int) -> None:
    for _ in range(500):
        if len(bmc.calls()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{bmc.name} was never asked: {bmc.calls()}")


@pytest.mark.slow
async def test_emulator_killed_mid_run_is_unreachable_within_the_deadline(
    lab: RedfishLab,
) -> None:
    dying, healthy = lab.start(), lab.start()
    driver = RedfishDriver(timeout=4)
    assert await driver.power_status(redfish_target(dying)) is PowerState.OFF
    dying.set_delay(10)  # the next request stalls inside the BMC ...
    asked = len(dying.calls())
    started = time.monotonic()
    pending = asyncio.ensure_future(driver.power(redfish_target(dying), PowerAction.ON))
    await asyncio.to_thread(wait_for_call, dying, asked + 1)
    # The other BMC is not held up by the stalled one.
    assert await driver.power_status(redfish_target(healthy)) is PowerState.OFF
    assert not pending.done()
    dying.kill()  # ... and the BMC dies while racker waits for its answer.
    with pytest.raises(BmcUnreachable, match=r"lost the connection|refused") as info:
        await pending
    assert time.monotonic() - started < 4
    assert info.value.retryable
    assert posted(dying, RESET) == []
    await driver.close()


@pytest.mark.slow
@pytest.mark.parametrize("sessions", [False, True], ids=["basic-auth", "session-auth"])
async def test_emulator_restarted_racker_recovers_without_restarting(
    lab: RedfishLab, sessions: bool
) -> None:
    bmc = lab.start(sessions=sessions)
    driver = RedfishDriver(timeout=4)
    t = redfish_target(bmc)
    await driver.power(t, PowerAction.ON)
    bmc.kill()
    with pytest.raises(BmcUnreachable, match="refused the connection"):
        await driver.power_status(t)
    bmc.start()  # same port, same state, no session of racker's
    assert await driver.power_status(t) is PowerState.ON
    await driver.power(t, PowerAction.OFF)
    assert bmc.system()["PowerState"] == "Off"
    if sessions:
        assert bmc.sessions() == 1  # a new one, after the restart
    await driver.close()


@pytest.mark.slow
async def test_restarted_while_racker_still_holds_a_session(lab: RedfishLab) -> None:
    """The BMC forgets racker's session token; sushy logs in again on the 401."""
    bmc = lab.start(sessions=True)
    driver = RedfishDriver(timeout=4)
    t = redfish_target(bmc)
    assert await driver.power_status(t) is PowerState.OFF
    bmc.kill()
    bmc.start()
    assert bmc.sessions() == 0
    assert await driver.power_status(t) is PowerState.OFF
    assert bmc.sessions() == 1
    await driver.close()


@pytest.mark.slow
async def test_slow_bmc_times_out_without_holding_up_others(lab: RedfishLab) -> None:
    slow, healthy = lab.start(), lab.start()
    driver = RedfishDriver(timeout=1.5)
    assert await driver.power_status(redfish_target(slow)) is PowerState.OFF  # logged in
    slow.set_delay(3)
    started = time.monotonic()
    pending = asyncio.ensure_future(driver.power_status(redfish_target(slow)))
    await asyncio.sleep(0)
    await first_done(pending, asyncio.ensure_future(driver.power_status(redfish_target(healthy))))
    with pytest.raises(BmcTimeout, match=r"did not answer within 1\.5 s"):
        await pending
    assert time.monotonic() - started < 2.5
    slow.set_delay(0)
    await asyncio.sleep(0.2)  # the abandoned thread's request ended at the deadline too
    assert await driver.power_status(redfish_target(slow)) is PowerState.OFF
    await driver.close()


@pytest.mark.slow
async def test_frozen_bmc_times_out_and_recovers_when_thawed(lab: RedfishLab) -> None:
    frozen = lab.start()
    driver = RedfishDriver(timeout=1.5)
    frozen.freeze()
    try:
        started = time.monotonic()
        with pytest.raises(BmcTimeout):
            await driver.power_status(redfish_target(frozen))
        assert time.monotonic() - started < 2.5
    finally:
        frozen.thaw()
    await asyncio.sleep(0.2)
    assert await driver.power_status(redfish_target(frozen)) is PowerState.OFF
    await driver.close()


def test_the_lab_leaves_no_emulator_behind(tmp_path: Path) -> None:
    with RedfishLab(tmp_path) as lab:
        bmc = lab.start()
        pid = bmc.proc.pid if bmc.proc else 0
        bmc.freeze()  # even a stopped one
    assert pid and not Path(f"/proc/{pid}").exists()
