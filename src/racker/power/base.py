"""The power interface every BMC driver implements (layer 2; no pyghmi or sushy here).

Narrow on purpose (after OpenStack Ironic's ``PowerInterface``): power state and actions, the
boot device override, and the BMC's identity. Callers (orchestrator, CLI) see only this module;
``racker.power.drivers.DRIVERS`` picks the concrete driver by name (``ipmi``, ``redfish``,
``auto``, ``fake``), so the fake driver is selected exactly like the real ones.

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
URL_SCHEMES = {"https": 443, "http": 80}  # a Redfish URL's scheme and its default port


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
    HTTP = "http"  # UEFI HTTP boot (Redfish ``UefiHttp``; IPMI has no such device)
    DEFAULT = "default"  # no override: the firmware's own boot order


@dataclass(frozen=True)
class BootSetting:
    device: BootDevice
    persistent: bool = False  # every boot (Redfish "Continuous"), not only the next ("Once")
    efi: bool = False  # a UEFI boot, else legacy (IPMI boot flags byte 1 bit 5; Redfish mode)

    def __post_init__(self) -> None:
        if self.device is BootDevice.HTTP and not self.efi:
            object.__setattr__(self, "efi", True)  # HTTP boot exists only in UEFI

    def __str__(self) -> str:
        flags = [f for f, on in (("persistent", self.persistent), ("efi", self.efi)) if on]
        return str(self.device) + (f" ({', '.join(flags)})" if flags else "")


class BmcCredentials:
    """The BMC user and password. ``repr``/``str`` never show the password."""

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
    """One node's BMC: where it is and how to log in.

    Without ``scheme`` the address is ``host`` and an IPMI ``port``; the Redfish service, if
    any, is then looked for at ``https://host`` (``:port`` added when it is not 623). With
    ``scheme`` (``bmc.addresses`` gave a URL) the BMC speaks Redfish at that URL only.
    """

    node: str  # the node's name in every message (its hostname)
    host: str
    credentials: BmcCredentials = field(repr=True)
    port: int = IPMI_PORT
    mac: str | None = None  # the node's primary MAC, for events
    scheme: str | None = None  # "https" or "http": a Redfish URL
    node_macs: tuple[str, ...] = ()  # the node's NIC MACs: which of a BMC's systems is it

    @property
    def address(self) -> str:
        """How messages name the BMC: ``host[:port]``, or its URL."""
        if self.scheme is not None:
            return self.redfish_url
        return self._host if self.port == IPMI_PORT else f"{self._host}:{self.port}"

    @property
    def redfish_url(self) -> str:
        """Where its Redfish service is (or would be): scheme, host and port, no path."""
        scheme = self.scheme or "https"
        default = URL_SCHEMES.get(scheme) if self.scheme else IPMI_PORT
        port = "" if self.port == default else f":{self.port}"
        return f"{scheme}://{self._host}{port}"

    @property
    def _host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


@dataclass(frozen=True)
class BmcInfo:
    """What a BMC says about itself.

    IPMI: Get Device ID (IPMI v2.0 section 20.1), the first six fields. Redfish: the
    ComputerSystem's Manufacturer, Model and BiosVersion and its Manager's FirmwareVersion;
    the IPMI-only fields stay zero.
    """

    device_id: int
    device_revision: int
    firmware: str  # the BMC's firmware: IPMI "major.minor" (minor is BCD), Redfish as given
    ipmi_version: str  # "2.0"; "" over Redfish
    manufacturer_id: int  # IANA enterprise number; 0 when unknown
    product_id: int
    manufacturer: str = ""  # the system's manufacturer by name (Redfish)
    model: str = ""
    bios: str = ""  # the system firmware (BIOS/UEFI) version, when the BMC tells it
    protocol: str = "ipmi"  # which protocol answered: "ipmi", "redfish" or "fake"

    def describe(self) -> str:
        """One line for ``racker bmc check``: firmware, then who made the machine."""
        maker = " ".join(p for p in (self.manufacturer, self.model) if p)
        if not maker and self.manufacturer_id:
            maker = f"IANA {self.manufacturer_id}"
        extra = [p for p in (maker, f"BIOS {self.bios}" if self.bios else "") if p]
        return self.firmware + (f" ({', '.join(extra)})" if extra else "")


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
        raise BmcNotConfigured(target.node, f"BMC port {target.port} is not a port number")
    if target.scheme is not None and target.scheme not in URL_SCHEMES:
        raise BmcNotConfigured(
            target.node, f"BMC URL scheme {target.scheme!r} is neither https nor http"
        )
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

    def known_protocol(self, target: BmcTarget) -> str:
        """The protocol this driver speaks with ``target`` ("ipmi", "redfish", "fake"), or ""
        while unknown. Never contacts the BMC."""
        return self.name

    async def detect_protocol(self, target: BmcTarget) -> str:
        """``known_protocol``, asking the BMC when a driver has to find out (``auto``)."""
        return self.known_protocol(target)

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
