"""Log lines with a budget: a flood of bad datagrams must not flood the log.

``LogBudget.note(source, kind, ...)`` logs the first ``per_key`` lines of each (source, kind)
in a period, counts the rest, and says how many were left out when the period turns over for
that key or when ``flush`` runs (the server calls it once a period): the first occurrence per
source and kind, and the totals, are all a person needs. Keys are bounded, so a flood from many
sources costs a bounded dict and one summary line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class LogBudget:
    def __init__(
        self,
        logger: logging.Logger,
        per_key: int = 3,
        period: float = 60.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.per_key = per_key
        self.period = period
        self.max_keys = max_keys
        self.clock = clock
        self.suppressed = 0  # every line left out so far (a metric)
        self._keys: dict[tuple[str, str], list[float]] = {}  # -> [period start, used, left out]

    def note(self, source: str, kind: str, msg: str, *args: object) -> None:
        """Log ``msg % args`` as a warning, within the budget of (``source``, ``kind``)."""
        now = self.clock()
        key = (source, kind)
        entry = self._keys.get(key)
        if entry is not None and now - entry[0] >= self.period:
            self._told(key, entry)
            entry = None
        if entry is None:
            if len(self._keys) >= self.max_keys:
                self.flush()
            entry = self._keys[key] = [now, 0, 0]
        if entry[1] < self.per_key:
            entry[1] += 1
            self.logger.warning(msg, *args)
        else:
            entry[2] += 1
            self.suppressed += 1

    def flush(self) -> None:
        """Say what was left out, in one line, and start afresh."""
        left_out = sum(int(e[2]) for e in self._keys.values())
        if left_out:
            sources = len({k[0] for k, e in self._keys.items() if e[2]})
            kinds = ", ".join(sorted({k[1] for k, e in self._keys.items() if e[2]}))
            self.logger.warning(
                "%d more lines (%s) from %d sources not logged in the last %.0f s",
                left_out,
                kinds,
                sources,
                self.period,
            )
        self._keys.clear()

    def _told(self, key: tuple[str, str], entry: list[float]) -> None:
        if entry[2]:
            self.logger.warning(
                "%d more %s lines from %s not logged in the last %.0f s",
                int(entry[2]),
                key[1],
                key[0],
                self.period,
            )
        del self._keys[key]
