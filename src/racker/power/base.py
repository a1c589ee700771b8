"""The power interface every BMC driver implements (layer 2; no pyghmi here).

Narrow on purpose (after OpenStack Ironic's ``PowerInterface``): power state and actions, the
boot device override, and the BMC's identity. Callers (orchestrator, CLI) see only this module;
``racker.power.drivers.DRIVERS`` picks the concrete driver by name, so the fake driver is
selected exactly like the real one.

Every public method goes through ``PowerDriver._call``: one choke point that validates the
target, times the operation, logs it and publishes a ``BmcEvent``. Drivers implement the
``_do_*`` methods. ``validate`` never contacts the BMC.
"""

from __future__ import annotations

import abc
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from racker.errors import BmcAuthFailed, BmcError, BmcNotConfigured
from racker.events import BmcEvent, Publish, discard

log = logging.getLogger("racker.power")

T = TypeVar("T")

IPMI_PORT = 623  # IPMI v2.0 section 13.1: RMCP's well-known UDP port (0x26F)


class PowerState(enum.StrEnum):
    ON = "on"
    OFF = "off"


class PowerAction(enum.StrEnum):
    """Chassis control actions (IPMI v2.0 section 28.3)."""

    ON = "on"
    OFF = "off"  # immediate power down, no OS shutdown
    CYCLE = "cycle"
    RESET = "reset"  # hard reset
    SOFT = "soft"  # ACPI soft shutdown: asks the OS to power off


class BootDevice(enum.StrEnum):
    PXE = "pxe"
    DISK = "disk"
    BIOS = "bios"  # the firmware setup utility
    DEFAULT = "default"  # no override: the firmware's own boot order


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice
    persistent: bool = False  # every boot, not only the next one
    efi: bool = False  # ask for a UEFI boot (boot flags byte 1 bit 5)

    def __str__(self) -> str:
        flags = [f for f, on in (("persistent", self.persistent), ("efi", self.efi)) if on]
        return str(self.device) + (f" ({', '.join(flags)})" if flags else "")


class BmcCredentials:
    """The IPMI user and password. ``repr``/``str`` never show the password."""

    __slots__ = ("_password", "user")

    def __init__(self, user: str, password: str) -> None:
        self.user = user
        self._password = password

    def reveal(self) -> str:
        return self._password

    def __repr__(self) -> str:
        return f"BmcCredentials(user={self.user!r}, password='***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BmcCredentials):
            return NotImplemented
        return (self.user, self._password) == (other.user, other._password)

    def __hash__(self) -> int:
        return hash((self.user, self._password))


@dataclass(frozen=True)
class BmcTarget:
    """One node's BMC: where it is and how to log in."""

    node: str  # the node's name in every message (its hostname)
    host: str
    credentials: BmcCredentials = field(repr=True)
    port: int = IPMI_PORT
    mac: str | None = None  # the node's primary MAC, for events

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == IPMI_PORT else f"{host}:{self.port}"


@dataclass(frozen=True)
class BmcInfo:
    """From Get Device ID (IPMI v2.0 section 20.1)."""

    device_id: int
    device_revision: int
    firmware: str  # "major.minor", minor is BCD
    ipmi_version: str  # "2.0"
    manufacturer_id: int  # IANA enterprise number
    product_id: int


def detail(err: BmcError) -> str:
    """The error's message without the leading "NODE: " (for rows that show the node)."""
    prefix = f"{err.node}: "
    return err.message[len(prefix) :] if err.message.startswith(prefix) else err.message


def validate_target(target: BmcTarget) -> None:
    """Check a target without contacting its BMC."""
    if not target.host:
        raise BmcNotConfigured(
            target.node, "no BMC address", "set bmc.addresses in racker.yaml or run racker serve"
        )
    if not 0 < target.port < 65536:
        raise BmcNotConfigured(target.node, f"BMC port {target.port} is not a UDP port")
    if not target.credentials.user or not target.credentials.reveal():
        raise BmcAuthFailed(
            target.node,
            "no BMC user name or password",
            "write the OEM files ipmi_user and ipmi_password ('racker factory init')",
        )


class PowerDriver(abc.ABC):
    """Async power control of many BMCs. Safe to call concurrently from one event loop."""

    name: ClassVar[str]

    def __init__(self, timeout: float = 20.0, publish: Publish = discard) -> None:
        self.timeout = timeout  # upper bound of one operation, seconds (config bmc.timeout)
        self.publish = publish

    def validate(self, target: BmcTarget) -> None:
        """Raise a ``BmcError`` if ``target`` cannot work; never contacts the BMC."""
        validate_target(target)

    async def power_status(self, target: BmcTarget) -> PowerState:
        return await self._call(target, "power-status", lambda: self._do_power_status(target))

    async def power(self, target: BmcTarget, action: PowerAction) -> None:
        await self._call(target, f"power-{action}", lambda: self._do_power(target, action))

    async def set_boot_device(self, target: BmcTarget, setting: BootSetting) -> None:
        """Set the next (or every, if persistent) boot's device.

        Drivers also disable the BMC's 60 s "boot flags valid" timer first, so the setting
        survives until the next boot however long the caller waits before powering on.
        """
        await self._call(
            target, f"bootdev-{setting.device}", lambda: self._do_set_boot(target, setting)
        )

    async def boot_device(self, target: BmcTarget) -> BootSetting:
        return await self._call(target, "bootdev-get", lambda: self._do_get_boot(target))

    async def disable_boot_flag_timeout(self, target: BmcTarget) -> None:
        await self._call(target, "bootflag-timer-off", lambda: self._do_disable_timer(target))

    async def info(self, target: BmcTarget) -> BmcInfo:
        return await self._call(target, "info", lambda: self._do_info(target))

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers hold nothing
        """Release sessions and threads; the driver is unusable afterwards."""

    async def _call(self, target: BmcTarget, action: str, run: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        error = ""
        try:
            self.validate(target)
            return await run()
        except BmcError as exc:
            error = exc.message
            raise
        except Exception as exc:
            error = f"{target.node}: internal error ({type(exc).__name__})"
            raise
        finally:
            duration = time.monotonic() - started
            if error:
                log.info("%s failed after %.2f s: %s", action, duration, error)
            else:
                log.debug("%s: %s at %s in %.3f s", target.node, action, target.address, duration)
            self.publish(
                BmcEvent(
                    kind="command",
                    mac=target.mac,
                    ts=time.time(),
                    node=target.node,
                    action=action,
                    ok=not error,
                    error=error,
                    duration=round(duration, 4),
                )
            )

    @abc.abstractmethod
    async def _do_power_status(self, target: BmcTarget) -> PowerState: ...

    @abc.abstractmethod
    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None: ...

    @abc.abstractmethod
    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None: ...

    @abc.abstractmethod
    async def _do_get_boot(self, target: BmcTarget) -> BootSetting: ...

    @abc.abstractmethod
    async def _do_disable_timer(self, target: BmcTarget) -> None: ...

    @abc.abstractmethod
    async def _do_info(self, target: BmcTarget) -> BmcInfo: ...
