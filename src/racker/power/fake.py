"""An in-memory power driver for tests and trials (layer 2).

Registered in ``racker.power.drivers.DRIVERS`` exactly like the IPMI driver (``bmc.driver:
fake`` or ``--driver fake``). Every BMC address gets a ``FakeBmc`` on first use (power off, no
boot override); tests reach in through ``bmc()`` to inject faults (unreachable, wrong password,
slow, unsupported) and read ``calls`` to see what was asked. With ``state_file`` the BMCs'
power and boot state survive between racker commands, so ``racker power NODE on`` followed by
``racker power NODE status`` behaves like a real rack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from racker.errors import BmcAuthFailed, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.events import Publish, discard
from racker.power.base import (
    BmcInfo,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)

FAKE_INFO = BmcInfo(
    device_id=0x20,
    device_revision=1,
    firmware="1.00",
    ipmi_version="2.0",
    manufacturer_id=0,
    product_id=0,
    protocol="fake",
)


@dataclass
class FakeBmc:
    power: PowerState = PowerState.OFF
    boot: BootSetting = field(default_factory=lambda: BootSetting(BootDevice.DEFAULT))
    boot_flags_kept: bool = False  # the 60 s boot-flag timer was disabled
    password: str | None = None  # None accepts any password
    reachable: bool = True
    delay: float = 0.0  # how long every answer takes, seconds
    unsupported: frozenset[str] = frozenset()  # operations answered "command not supported"
    info: BmcInfo = FAKE_INFO


@dataclass(frozen=True)
class FakeCall:
    node: str
    address: str
    op: str  # the operation, e.g. "power", "set_boot_device"
    arg: str = ""


class FakeDriver(PowerDriver):
    name = "fake"

    def __init__(
        self, timeout: float = 20.0, publish: Publish = discard, state_file: Path | None = None
    ) -> None:
        super().__init__(timeout, publish)
        self.bmcs: dict[str, FakeBmc] = {}
        self.calls: list[FakeCall] = []
        self.state_file = state_file
        self._locks: dict[str, asyncio.Lock] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        if state_file is not None:
            self._load(state_file)

    def bmc(self, host: str, port: int = 623) -> FakeBmc:
        """The fake BMC at ``host``/``port`` (created on first use)."""
        return self.bmcs.setdefault(_key(host, port), FakeBmc())

    async def _answer(self, target: BmcTarget, op: str, arg: str = "") -> FakeBmc:
        bmc = self.bmc(target.host, target.port)
        self.calls.append(FakeCall(target.node, target.address, op, arg))
        if asyncio.get_running_loop() is not self._loop:  # locks belong to one loop
            self._loop, self._locks = asyncio.get_running_loop(), {}
        lock = self._locks.setdefault(_key(target.host, target.port), asyncio.Lock())
        try:
            await asyncio.wait_for(self._serve(target, bmc, op, lock), self.timeout)
        except TimeoutError:
            raise BmcTimeout(
                target.node,
                f"{op}: the BMC at {target.address} did not answer within {self.timeout:g} s",
                "the BMC may be overloaded; retry later",
            ) from None
        return bmc

    async def _serve(self, target: BmcTarget, bmc: FakeBmc, op: str, lock: asyncio.Lock) -> None:
        async with lock:
            if not bmc.reachable:
                raise BmcUnreachable(
                    target.node,
                    f"{op}: no answer from the BMC at {target.address}",
                    "check the BMC's address and cabling",
                )
            if bmc.delay:
                await asyncio.sleep(bmc.delay)
            if bmc.password is not None and bmc.password != target.credentials.reveal():
                raise BmcAuthFailed(
                    target.node,
                    f"the BMC at {target.address} rejected the credentials",
                    "check the OEM files ipmi_user and ipmi_password",
                )
            if op in bmc.unsupported:
                raise BmcUnsupported(
                    target.node, f"{op}: the BMC at {target.address} does not support it"
                )

    async def _do_power_status(self, target: BmcTarget) -> PowerState:
        return (await self._answer(target, "power_status")).power

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        bmc = await self._answer(target, "power", str(action))
        if action is PowerAction.ON:
            bmc.power = PowerState.ON
        elif action in (PowerAction.OFF, PowerAction.SOFT):
            bmc.power = PowerState.OFF
        else:  # cycle and reset leave the machine running
            bmc.power = PowerState.ON
        if action is not PowerAction.OFF and not bmc.boot.persistent and bmc.power is PowerState.ON:
            # A one-time override is consumed by the boot it applied to.
            bmc.boot = BootSetting(BootDevice.DEFAULT)
        self._save()

    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None:
        bmc = await self._answer(target, "set_boot_device", str(setting))
        bmc.boot = setting
        bmc.boot_flags_kept = True
        self._save()

    async def _do_get_boot(self, target: BmcTarget) -> BootSetting:
        return (await self._answer(target, "boot_device")).boot

    async def _do_disable_timer(self, target: BmcTarget) -> None:
        bmc = await self._answer(target, "disable_boot_flag_timeout")
        bmc.boot_flags_kept = True
        self._save()

    async def _do_info(self, target: BmcTarget) -> BmcInfo:
        return (await self._answer(target, "info")).info

    # -- persistence for trials across racker commands ----------------------------------

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            return  # a damaged trial file starts over; it holds nothing of value
        for key, item in data.items() if isinstance(data, dict) else ():
            with contextlib.suppress(KeyError, ValueError, TypeError):
                self.bmcs[key] = FakeBmc(
                    power=PowerState(item["power"]),
                    boot=BootSetting(
                        BootDevice(item["boot"]["device"]),
                        bool(item["boot"]["persistent"]),
                        bool(item["boot"]["efi"]),
                    ),
                    boot_flags_kept=bool(item.get("boot_flags_kept", False)),
                )

    def _save(self) -> None:
        if self.state_file is None:
            return
        data: dict[str, Any] = {
            key: {
                "power": str(bmc.power),
                "boot": {
                    "device": str(bmc.boot.device),
                    "persistent": bmc.boot.persistent,
                    "efi": bmc.boot.efi,
                },
                "boot_flags_kept": bmc.boot_flags_kept,
            }
            for key, bmc in self.bmcs.items()
        }
        tmp = self.state_file.with_name(self.state_file.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_file)


def _key(host: str, port: int) -> str:
    return f"{host}:{port}"
