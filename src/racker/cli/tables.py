"""The tables ``racker status`` and ``racker bmc check`` print (rich markup, colours)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from racker.bootstrap.status import RogueSighting, StatusRow

if TYPE_CHECKING:
    from racker.power.check import CheckRow


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return ""
    seconds = int(max(now - ts, 0))
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def rogue_dhcp_lines(rogues: Sequence[RogueSighting], now: float) -> list[str]:
    """``racker status``'s warning lines: a DHCP server other than racker answered (24 h)."""
    return [
        f"[red]warning:[/] another DHCP server answers on {r.interface or 'the PXE network'}:"
        f" {r.server_ip} (MAC {r.server_mac}), last {r.message_type} {_ago(r.last_seen, now)}"
        f" ({r.warnings} warning{'s' if r.warnings != 1 else ''} in 24 h); nodes that take its"
        " offers do not boot from racker"
        for r in rogues
    ]


def status_table(rows: Sequence[StatusRow], full: bool = False, now: float | None = None) -> Table:
    now = time.time() if now is None else now
    table = Table(box=None, pad_edge=False)
    columns = ["node", "type", "role", "address", "bmc", "power", "state", "since", "last event"]
    if full:
        columns[4:4] = ["primary MAC", "BMC MAC", "secondary MAC", "BMC address"]
        columns[-2:-2] = ["boot device", "attempt", "reason"]
    for column in columns:
        table.add_column(column)
    for r in rows:
        bmc = {True: "[green]ok[/]", False: "[red]unreachable[/]", None: "[yellow]n/a[/]"}[
            r.bmc_reachable
        ]
        state = {"ready": f"[green]{r.state}[/]", "failed": f"[red]{r.state}[/]"}.get(
            r.state, r.state
        )
        cells = [
            r.node,
            r.node_type,
            r.role,
            r.address,
            bmc,
            r.power,
            state,
            _ago(r.since, now),
            r.last_event,
        ]
        if full:
            cells[4:4] = [r.primary_mac, r.bmc_mac, r.secondary_mac, r.bmc_address]
            cells[-2:-2] = [r.boot_device, str(r.attempt), r.reason]
        table.add_row(*cells)
    return table


def bmc_check_table(rows: Sequence[CheckRow]) -> Table:
    def mark(value: bool | None) -> str:
        return "[green]✓[/]" if value else "[red]✗[/]" if value is False else "[dim]-[/]"

    table = Table(title=f"BMCs ({sum(r.ok for r in rows)}/{len(rows)} fine)")
    columns = ("Node", "Row", "BMC", "Protocol", "Reachable", "Login", "Power", "Boot", "Firmware")
    for column in columns:
        table.add_column(column, no_wrap=column != "Firmware")
    table.add_column("Problem", overflow="fold")
    for r in rows:
        problem = r.error + (f"\nhint: {r.hint}" if r.hint else "")
        table.add_row(
            r.node, str(r.row), r.address or "-", r.protocol or "-", mark(r.reachable),
            mark(r.credentials), r.power or "-", r.boot or "-", r.firmware or "-", problem,
        )  # fmt: skip
    return table
