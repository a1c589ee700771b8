"""The Redfish values racker sends and reads: tables of (input, decision)."""

from __future__ import annotations

from typing import Any

import pytest

from racker.power import redfish_codec as rc
from racker.power.base import BootDevice, BootSetting, PowerAction, PowerState

EMULATOR_RESETS = [  # sushy-tools' emulator, in its order
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "ForceOn",
]
IDRAC_RESETS = ["On", "ForceOff", "ForceRestart", "GracefulShutdown", "PushPowerButton", "Nmi"]


@pytest.mark.parametrize(
    ("action", "allowed", "expected"),
    [
        (PowerAction.ON, EMULATOR_RESETS, "On"),
        (PowerAction.ON, ["ForceOn", "ForceOff"], "ForceOn"),
        (PowerAction.OFF, EMULATOR_RESETS, "ForceOff"),
        (PowerAction.SOFT, EMULATOR_RESETS, "GracefulShutdown"),
        (PowerAction.RESET, EMULATOR_RESETS, "ForceRestart"),
        (PowerAction.CYCLE, EMULATOR_RESETS, "ForceRestart"),  # no PowerCycle there
        (PowerAction.CYCLE, [*IDRAC_RESETS, "PowerCycle"], "PowerCycle"),
        (PowerAction.RESET, ["PowerCycle", "On"], "PowerCycle"),
        (PowerAction.SOFT, ["On", "ForceOff"], None),  # nothing graceful: refused, not forced
        (PowerAction.ON, None, "On"),  # the BMC does not list them: the first choice
        (PowerAction.CYCLE, [], "PowerCycle"),
    ],
)
def test_reset_type(action: PowerAction, allowed: list[str] | None, expected: str | None) -> None:
    assert rc.reset_type(action, allowed) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("On", PowerState.ON),
        ("Off", PowerState.OFF),
        ("PoweringOn", PowerState.ON),
        ("PoweringOff", PowerState.ON),
        ("Paused", PowerState.ON),
    ],
)
def test_power_state(value: str, expected: PowerState) -> None:
    assert rc.power_state(value) is expected


@pytest.mark.parametrize("value", [None, "", "on", "Unknown", 1])
def test_power_state_refuses_what_is_not_a_power_state(value: object) -> None:
    with pytest.raises(ValueError, match="PowerState"):
        rc.power_state(value)


UEFI_BOOT = {
    "BootSourceOverrideEnabled": "Continuous",
    "BootSourceOverrideTarget": "Hdd",
    "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd", "UefiHttp"],
    "BootSourceOverrideMode": "UEFI",
}
LEGACY_BOOT = {
    **UEFI_BOOT,
    "BootSourceOverrideMode": "Legacy",
    "BootSourceOverrideTarget@Redfish.AllowableValues": ["Pxe", "Cd", "Hdd"],
}
NO_MODE = {"BootSourceOverrideEnabled": "Disabled", "BootSourceOverrideTarget": "None"}


@pytest.mark.parametrize(
    ("setting", "boot", "mode", "change"),
    [
        (BootSetting(BootDevice.PXE, efi=True), UEFI_BOOT, None, rc.BootChange("Pxe", "Once")),
        (
            BootSetting(BootDevice.DISK, persistent=True, efi=True),
            UEFI_BOOT,
            None,
            rc.BootChange("Hdd", "Continuous"),
        ),
        (BootSetting(BootDevice.PXE), UEFI_BOOT, "Legacy", rc.BootChange("Pxe", "Once")),
        (BootSetting(BootDevice.PXE, efi=True), LEGACY_BOOT, "UEFI", None),  # targets: after
        (BootSetting(BootDevice.HTTP), UEFI_BOOT, None, rc.BootChange("UefiHttp", "Once")),
        (BootSetting(BootDevice.BIOS), NO_MODE, None, rc.BootChange("BiosSetup", "Once")),
        (BootSetting(BootDevice.DEFAULT), UEFI_BOOT, None, rc.BootChange(None, "Disabled")),
        (BootSetting(BootDevice.DEFAULT, efi=True), LEGACY_BOOT, None, None),
    ],
)
def test_boot_changes(
    setting: BootSetting, boot: dict[str, Any], mode: str | None, change: rc.BootChange | None
) -> None:
    assert rc.mode_change(setting, boot) == mode
    if change is not None:
        assert rc.boot_change(setting, boot) == change


def test_http_boot_is_always_a_uefi_boot() -> None:
    assert BootSetting(BootDevice.HTTP).efi is True
    assert rc.mode_change(BootSetting(BootDevice.HTTP), LEGACY_BOOT) == "UEFI"


@pytest.mark.parametrize(
    ("setting", "boot", "why"),
    [
        (BootSetting(BootDevice.BIOS), UEFI_BOOT, "BiosSetup is not among Pxe, Cd, Hdd, UefiHttp"),
        (BootSetting(BootDevice.HTTP), LEGACY_BOOT, "UefiHttp is not among Pxe, Cd, Hdd"),
    ],
)
def test_a_target_the_bmc_does_not_list_is_refused(
    setting: BootSetting, boot: dict[str, Any], why: str
) -> None:
    with pytest.raises(rc.BootRefused, match=why):
        rc.boot_change(setting, boot)


def test_a_mode_the_bmc_does_not_list_is_refused() -> None:
    uefi_only = {**UEFI_BOOT, "BootSourceOverrideMode@Redfish.AllowableValues": ["UEFI"]}
    with pytest.raises(rc.BootRefused, match="boot mode Legacy is not among UEFI"):
        rc.mode_change(BootSetting(BootDevice.PXE), uefi_only)


@pytest.mark.parametrize(
    ("boot", "expected"),
    [
        (UEFI_BOOT, BootSetting(BootDevice.DISK, persistent=True, efi=True)),
        (
            {**UEFI_BOOT, "BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"},
            BootSetting(BootDevice.PXE, efi=True),
        ),
        (
            {**LEGACY_BOOT, "BootSourceOverrideTarget": "BiosSetup"},
            BootSetting(BootDevice.BIOS, True),
        ),
        ({**UEFI_BOOT, "BootSourceOverrideTarget": "UefiHttp"}, BootSetting(BootDevice.HTTP, True)),
        (NO_MODE, BootSetting(BootDevice.DEFAULT)),
        ({**UEFI_BOOT, "BootSourceOverrideEnabled": "Disabled"}, BootSetting(BootDevice.DEFAULT)),
        ({}, BootSetting(BootDevice.DEFAULT)),
    ],
)
def test_boot_setting_read_back(boot: dict[str, Any], expected: BootSetting) -> None:
    assert rc.boot_setting(boot) == expected


def test_a_target_racker_has_no_name_for() -> None:
    with pytest.raises(ValueError, match="boot override target 'Cd'"):
        rc.boot_setting({**UEFI_BOOT, "BootSourceOverrideTarget": "Cd"})
