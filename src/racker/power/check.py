"""``racker bmc check``: ask every BMC at once whether it answers, accepts the credentials, and
what its power state and boot override are, and over which protocol (layer 2; uses only the
driver interface).

One row per node; a BMC's failure is a row, never an exception, so one dead BMC does not hide
the others. Rows come back in the nodes' order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from racker.errors import BmcAuthFailed, BmcError, BmcNotConfigured, BmcTlsError, BmcUnsupported
from racker.model import Node
from racker.power.base import BmcTarget, PowerDriver, detail


@dataclass(frozen=True)
class CheckRow:
    node: str
    row: int  # nodes.csv row number (Node.index)
    address: str  # host[:port], "" when unknown
    reachable: bool | None  # None: not tried (no address or credentials)
    credentials: bool | None  # accepted? None: not known (BMC not reached)
    power: str = ""  # "on" / "off", "" when unknown
    boot: str = ""  # the boot override, e.g. "pxe (efi)", "default"
    firmware: str = ""
    error: str = ""
    hint: str = ""
    protocol: str = ""  # "ipmi", "redfish" (or "fake"); "" when it is not known

    @property
    def ok(self) -> bool:
        return bool(self.reachable and self.credentials and not self.error)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


async def check_one(driver: PowerDriver, node: Node, target: BmcTarget | BmcError) -> CheckRow:
    if isinstance(target, BmcError):
        return CheckRow(
            node.hostname, node.index, "", None, None, error=detail(target), hint=target.hint or ""
        )
    name, row, address = node.hostname, node.index, target.address
    try:
        power = await driver.power_status(target)
    except BmcError as exc:
        # Not configured: not tried; refused credentials or certificate: reached; anything
        # else: not reached.
        reached = isinstance(exc, BmcAuthFailed | BmcTlsError)
        reachable = None if isinstance(exc, BmcNotConfigured) else reached
        credentials = False if isinstance(exc, BmcAuthFailed) else None
        return CheckRow(
            name,
            row,
            address,
            reachable,
            credentials,
            error=detail(exc),
            hint=exc.hint or "",
            protocol=driver.known_protocol(target),
        )
    errors: list[str] = []
    hint = ""
    boot = firmware = ""
    try:
        boot = str(await driver.boot_device(target))
    except BmcUnsupported:
        boot = "unsupported"
    except BmcError as exc:
        errors.append(detail(exc))
        hint = hint or exc.hint or ""
    try:
        info = await driver.info(target)
        firmware = info.describe()
    except BmcUnsupported:
        firmware = "unsupported"
    except BmcError as exc:
        errors.append(detail(exc))
        hint = hint or exc.hint or ""
    return CheckRow(
        name,
        row,
        address,
        reachable=True,
        credentials=True,
        power=str(power),
        boot=boot,
        firmware=firmware,
        error="; ".join(errors),
        hint=hint,
        protocol=driver.known_protocol(target),
    )


async def check_bmcs(
    driver: PowerDriver, entries: Sequence[tuple[Node, BmcTarget | BmcError]]
) -> list[CheckRow]:
    """Check every BMC concurrently (the driver bounds each operation by its timeout)."""
    return list(await asyncio.gather(*(check_one(driver, n, t) for n, t in entries)))
