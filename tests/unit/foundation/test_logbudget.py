"""LogBudget: the first lines per (source, kind) and a period, then counts and one line."""

from __future__ import annotations

import logging

import pytest

from racker.logbudget import LogBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def budget(caplog: pytest.LogCaptureFixture) -> tuple[LogBudget, Clock]:
    caplog.set_level(logging.WARNING, logger="test.budget")
    clock = Clock()
    return LogBudget(logging.getLogger("test.budget"), 2, 60.0, 3, clock), clock


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records]


def test_first_lines_per_source_and_kind_then_counted(
    budget: tuple[LogBudget, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, clock = budget
    for i in range(100):
        log.note("10.0.0.1", "malformed", "bad %d", i)
    log.note("10.0.0.1", "refused", "refused")
    log.note("10.0.0.2", "malformed", "other")
    assert lines(caplog) == ["bad 0", "bad 1", "refused", "other"]
    assert log.suppressed == 98
    clock.now = 61.0  # the period turns over for that key: what was left out is said
    log.note("10.0.0.1", "malformed", "bad again")
    assert lines(caplog)[-2:] == [
        "98 more malformed lines from 10.0.0.1 not logged in the last 60 s",
        "bad again",
    ]


def test_keys_are_bounded_and_flush_sums_up(
    budget: tuple[LogBudget, Clock], caplog: pytest.LogCaptureFixture
) -> None:
    log, _ = budget
    for source in range(50):  # many sources: at most max_keys (3) remembered at once
        for _ in range(5):
            log.note(f"10.0.1.{source}", "malformed", "bad")
        assert len(log._keys) <= 3
    log.flush()
    summary = [line for line in lines(caplog) if "not logged" in line]
    assert sum(int(line.split()[0]) for line in summary) == log.suppressed == 50 * 3
    assert len(lines(caplog)) < 50 * 2 + 50  # first lines and summaries, never all 250
