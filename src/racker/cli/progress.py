"""How long operations show on the terminal: a bootstrap run (a live table on a TTY, plain
lines otherwise, or JSON lines) and a Flatcar download (a progress bar per file).

Both only format what they are told: ``BootstrapProgress`` is the run's ``Publish`` (the
orchestrator's ``NodeStateEvent``s and the boot-stack events routed to a node),
``DownloadProgress`` the downloader's ``Progress`` hooks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any, Literal

from rich import progress as rp
from rich.console import Console
from rich.live import Live
from rich.table import Table

from racker.bootstrap.machine import NodeRecord, Phase
from racker.bootstrap.orchestrator import RunResult
from racker.bootstrap.plan import PlannedNode
from racker.download import Progress
from racker.events import Event, NodeStateEvent

Mode = Literal["live", "plain", "json"]

_STYLE = {Phase.READY: "green", Phase.FAILED: "red", Phase.PENDING: "dim"}


def _elapsed(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class _Row:
    name: str
    role: str
    phase: str = "pending"
    attempt: int = 1
    since: float = 0.0
    started: float = 0.0
    reason: str = ""


class BootstrapProgress:
    """A ``Publish`` that shows a run; ``close`` ends the live view, ``summary`` ends the run."""

    def __init__(
        self,
        nodes: Iterable[PlannedNode],
        mode: Mode,
        out: IO[str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.mode = mode
        self.out = out
        self.clock = clock
        self.nodes = {p.node.primary_mac: p for p in nodes}
        now = clock()
        self.rows = {
            mac: _Row(p.name, str(p.role), started=now, since=now) for mac, p in self.nodes.items()
        }
        self._live: Live | None = None
        self._console = Console(file=out, force_terminal=mode == "live", soft_wrap=True)
        if mode == "live":
            self._live = Live(
                self._table(),
                console=self._console,
                refresh_per_second=4,
                get_renderable=self._table,
            )
            self._live.start()

    def __call__(self, event: Event) -> None:
        if self.mode == "json":
            self.out.write(json.dumps(event.to_dict(), default=str) + "\n")
            self.out.flush()
            return
        if not isinstance(event, NodeStateEvent) or event.mac not in self.rows:
            return
        row = self.rows[event.mac]
        row.phase, row.attempt, row.since, row.reason = (
            event.new,
            event.attempt,
            event.ts,
            event.reason,
        )
        if self.mode == "plain":
            stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
            tail = f": {event.reason}" if event.reason else ""
            self.out.write(
                f"{stamp} {row.name} {event.old or '-'} -> {event.new} "
                f"(attempt {event.attempt}){tail}\n"
            )
            self.out.flush()

    def _table(self) -> Table:
        now = self.clock()
        table = Table(box=None, pad_edge=False)
        for column in ("node", "role", "phase", "in phase", "elapsed", "attempt", "reason"):
            table.add_column(column)
        for row in self.rows.values():
            style = _STYLE.get(Phase(row.phase), "") if row.phase in set(Phase) else ""
            table.add_row(
                row.name,
                row.role,
                f"[{style}]{row.phase}[/]" if style else row.phase,
                _elapsed(now - row.since),
                _elapsed(now - row.started),
                str(row.attempt),
                row.reason[:60],
            )
        return table

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def summary(self, result: RunResult) -> None:
        """The final table (or, with JSON output, one ``summary`` object)."""
        self.close()
        rows = summary_rows(result, self.nodes)
        if self.mode == "json":
            self.out.write(
                json.dumps(
                    {
                        "source": "bootstrap",
                        "kind": "summary",
                        "ok": result.ok,
                        "cancelled": result.cancelled,
                        "nodes": rows,
                    }
                )
                + "\n"
            )
            self.out.flush()
            return
        table = Table(title="bootstrap summary")
        for column in ("node", "role", "state", "attempts", "reason"):
            table.add_column(column)
        for r in rows:
            style = "green" if r["state"] == "ready" else "red"
            table.add_row(
                r["node"], r["role"], f"[{style}]{r['state']}[/]", str(r["attempts"]), r["reason"]
            )
        console = Console(file=self.out, force_terminal=self.mode == "live", width=120)
        console.print(table)
        ready = sum(1 for r in rows if r["state"] == "ready")
        took = _elapsed(result.finished - result.started)
        verdict = "cancelled" if result.cancelled else "done"
        console.print(f"{verdict}: {ready}/{len(rows)} node(s) ready in {took}")


def summary_rows(result: RunResult, nodes: Mapping[str, PlannedNode]) -> list[dict[str, Any]]:
    """One row per planned node (``nodes`` is keyed by primary MAC), in plan order."""
    rows = []
    for mac, planned in nodes.items():
        rec: NodeRecord | None = result.records.get(mac)
        rows.append(
            {
                "node": planned.name,
                "mac": mac,
                "role": str(planned.role),
                "state": str(rec.phase) if rec else "pending",
                "attempts": rec.attempt if rec else 0,
                "reason": rec.reason if rec and rec.phase is Phase.FAILED else "",
            }
        )
    return rows


class DownloadProgress(Progress):
    """A rich progress bar per file, for ``racker assets fetch`` on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self._bar = rp.Progress(
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            rp.DownloadColumn(),
            rp.TransferSpeedColumn(),
            rp.TimeRemainingColumn(),
            console=console,
        )
        self._task: rp.TaskID | None = None

    def __enter__(self) -> DownloadProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def start(self, name: str, total: int | None, done: int) -> None:
        self._task = self._bar.add_task(name, total=total, completed=done)

    def advance(self, count: int) -> None:
        if self._task is not None:
            self._bar.advance(self._task, count)

    def note(self, message: str) -> None:
        self._bar.console.print(message)
