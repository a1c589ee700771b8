"""One power or boot-device action on many nodes at once (layer 2; driver interface only).

Used by ``racker power`` and ``racker bootdev``: every node gets a row, failures included, so
one dead BMC never hides what happened to the others. Rows keep the nodes' order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from racker.errors import BmcError
from racker.model import Node
from racker.power.base import BmcTarget, BootSetting, PowerAction, PowerDriver, detail

POWER_COMMANDS = ("status", "on", "off", "cycle", "reset", "soft")


@dataclass(frozen=True)
class ActionRow:
    node: str
    row: int
    address: str
    ok: bool
    result: str = ""  # "on"/"off" for status, the action done otherwise
    error: str = ""
    hint: str = ""
    retryable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Operation = Callable[[PowerDriver, BmcTarget], Awaitable[str]]


def power_operation(command: str) -> Operation:
    """``status`` or a ``PowerAction`` name -> what to run on one target."""
    if command == "status":

        async def status(driver: PowerDriver, target: BmcTarget) -> str:
            return str(await driver.power_status(target))

        return status
    action = PowerAction(command)

    async def act(driver: PowerDriver, target: BmcTarget) -> str:
        await driver.power(target, action)
        return f"power {action} requested"

    return act


def bootdev_operation(setting: BootSetting) -> Operation:
    async def set_boot(driver: PowerDriver, target: BmcTarget) -> str:
        await driver.set_boot_device(target, setting)
        return f"next boot: {setting}" if not setting.persistent else f"every boot: {setting}"

    return set_boot


async def _one(
    driver: PowerDriver, node: Node, target: BmcTarget | BmcError, op: Operation
) -> ActionRow:
    if isinstance(target, BmcError):
        return ActionRow(
            node.hostname, node.index, "", False, error=detail(target), hint=target.hint or ""
        )
    try:
        result = await op(driver, target)
    except BmcError as exc:
        return ActionRow(
            node.hostname,
            node.index,
            target.address,
            False,
            error=detail(exc),
            hint=exc.hint or "",
            retryable=exc.retryable,
        )
    return ActionRow(node.hostname, node.index, target.address, True, result)


async def apply_to_all(
    driver: PowerDriver, entries: Sequence[tuple[Node, BmcTarget | BmcError]], op: Operation
) -> list[ActionRow]:
    return list(await asyncio.gather(*(_one(driver, n, t, op) for n, t in entries)))
