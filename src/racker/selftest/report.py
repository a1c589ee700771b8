"""The self-test's results: one ``Check`` per thing tested, as text (✓/✗) or JSON."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Check:
    service: str  # "dhcp", "tftp", "http"
    name: str  # what was tested, e.g. "bios", "undionly.kpxe", "/healthz"
    ok: bool
    seconds: float
    detail: str  # what was seen (ok) or what went wrong (not ok)


def timed(service: str, name: str, run: Callable[[], str]) -> Check:
    """``run()`` as a check: its return value is the detail; a ``CheckFailed`` (or an
    ``OSError``) is a failure whose text is the detail."""
    start = time.monotonic()
    try:
        detail = run()
    except (CheckFailed, OSError) as exc:
        return Check(service, name, False, time.monotonic() - start, str(exc))
    return Check(service, name, True, time.monotonic() - start, detail)


class CheckFailed(Exception):
    """What a check found wrong (its text is shown to the operator)."""


def passed(checks: Sequence[Check]) -> bool:
    return bool(checks) and all(c.ok for c in checks)


def as_text(checks: Sequence[Check]) -> list[str]:
    """One line per check, then a summary line."""
    width = max((len(c.name) for c in checks), default=0)
    lines = [
        f"{'✓' if c.ok else '✗'} {c.service:<4} {c.name:<{width}} {c.seconds * 1000:8.1f} ms"
        f"  {c.detail}"
        for c in checks
    ]
    failed = sum(1 for c in checks if not c.ok)
    total = sum(c.seconds for c in checks)
    if failed:
        lines.append(f"selftest: {failed} of {len(checks)} checks failed ({total:.2f} s)")
    else:
        lines.append(f"selftest: all {len(checks)} checks passed ({total:.2f} s)")
    return lines


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "ok": passed(checks),
        "checks": [{**asdict(c), "seconds": round(c.seconds, 6)} for c in checks],
    }
