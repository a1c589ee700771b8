"""The Redfish values racker sends and reads (layer 1 in spirit: pure, JSON in, values out).

Names follow the DMTF Redfish schema: ``ComputerSystem.Reset`` and its ``ResetType``
(``ResetType@Redfish.AllowableValues`` lists what a BMC accepts), and the ComputerSystem's
``Boot`` object (``BootSourceOverrideTarget``/``Enabled``/``Mode``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from racker.power.base import BootDevice, BootSetting, PowerAction, PowerState

# For each action, the ResetTypes that do it, best first; the first one the BMC allows wins.
# IPMI's "power cycle" (off, then on) is Redfish's PowerCycle; BMCs without it (sushy-tools'
# emulator, older iLOs) get ForceRestart, the nearest hard action that ends up on.
RESET_CHOICES: dict[PowerAction, tuple[str, ...]] = {
    PowerAction.ON: ("On", "ForceOn"),
    PowerAction.OFF: ("ForceOff",),
    PowerAction.CYCLE: ("PowerCycle", "ForceRestart"),
    PowerAction.RESET: ("ForceRestart", "PowerCycle"),
    PowerAction.SOFT: ("GracefulShutdown",),
}

BOOT_TARGETS: dict[BootDevice, str] = {
    BootDevice.PXE: "Pxe",
    BootDevice.DISK: "Hdd",
    BootDevice.BIOS: "BiosSetup",
    BootDevice.HTTP: "UefiHttp",
}
_TARGET_DEVICES = {v: k for k, v in BOOT_TARGETS.items()}
ALLOWED_TARGETS = "BootSourceOverrideTarget@Redfish.AllowableValues"
ALLOWED_MODES = "BootSourceOverrideMode@Redfish.AllowableValues"


def reset_type(action: PowerAction, allowed: Sequence[str] | None) -> str | None:
    """The ResetType for ``action`` among ``allowed`` (None: the BMC does not say, so the
    first choice); None when the BMC allows none of them."""
    choices = RESET_CHOICES[action]
    if not allowed:
        return choices[0]
    return next((c for c in choices if c in allowed), None)


def power_state(value: object) -> PowerState:
    """``PowerState``: "Off" is off; "On", "PoweringOn", "PoweringOff" and "Paused" all mean
    power is applied (what IPMI's chassis status reports). Raises ValueError otherwise."""
    if value == "Off":
        return PowerState.OFF
    if value in ("On", "PoweringOn", "PoweringOff", "Paused"):
        return PowerState.ON
    raise ValueError(f"PowerState {value!r}")


@dataclass(frozen=True)
class BootChange:
    """What to PATCH into ``Boot``; ``target`` None is left out."""

    target: str | None
    enabled: str


class BootRefused(ValueError):
    """The BMC's allowable values rule the setting out (message: what it allows)."""


def mode_change(setting: BootSetting, boot: Mapping[str, Any]) -> str | None:
    """The ``BootSourceOverrideMode`` to PATCH first, or None when it is already right, when
    the BMC has no mode property (it is not asked), or for "no override".

    Sent on its own before the target: a BMC lists the targets of its current mode (UefiHttp
    only in UEFI), and a BMC that cannot switch modes then still takes a target."""
    if setting.device is BootDevice.DEFAULT:
        return None
    mode = "UEFI" if setting.efi else "Legacy"
    current = boot.get("BootSourceOverrideMode")
    if current is None or current == mode:
        return None
    allowed = boot.get(ALLOWED_MODES)
    if allowed and mode not in allowed:
        raise BootRefused(f"boot mode {mode} is not among {', '.join(map(str, allowed))}")
    return mode


def boot_change(setting: BootSetting, boot: Mapping[str, Any]) -> BootChange:
    """The target and frequency to PATCH for ``setting``, given the current ``Boot``."""
    if setting.device is BootDevice.DEFAULT:
        return BootChange(None, "Disabled")
    target = BOOT_TARGETS[setting.device]
    allowed = boot.get(ALLOWED_TARGETS)
    if allowed and target not in allowed:
        raise BootRefused(f"boot target {target} is not among {', '.join(map(str, allowed))}")
    return BootChange(target, "Continuous" if setting.persistent else "Once")


def boot_setting(boot: Mapping[str, Any]) -> BootSetting:
    """The override a ``Boot`` object describes. Raises ValueError for a target racker has
    no name for (e.g. "Cd", "Usb")."""
    enabled = boot.get("BootSourceOverrideEnabled")
    target = boot.get("BootSourceOverrideTarget")
    if enabled in (None, "Disabled") or target in (None, "None"):
        return BootSetting(BootDevice.DEFAULT)
    device = _TARGET_DEVICES.get(str(target))
    if device is None:
        raise ValueError(f"boot override target {target!r}")
    return BootSetting(
        device, enabled == "Continuous", boot.get("BootSourceOverrideMode") == "UEFI"
    )
