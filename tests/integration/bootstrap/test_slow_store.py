"""racker bootstrap on a slow disk (issue 22): every job of the store's writers (the boot
stack's: leases, events; the orchestrator's: node states, node logs) held 300 ms
(RACKER_TEST_COMMIT_DELAY; the run takes about twice as long). The nodes are still provisioned
on their first attempt, and the run stores everything it did. That the event loop answers
while a commit is held is shown in tests/unit/bootstrap/test_journal.py and
tests/integration/serve/test_reload_slow_store.py."""

from __future__ import annotations

import json

import pytest

from racker.app.stack import COMMIT_DELAY_ENV
from tests.integration.bootstrap.test_simrack import FAST, make_rack, run  # noqa: F401 - fixture

pytestmark = [pytest.mark.root, pytest.mark.slow]


def test_nodes_become_ready_with_every_commit_held(
    make_rack,  # type: ignore[no-untyped-def]  # noqa: F811 - the fixture
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(COMMIT_DELAY_ENV, "0.3")
    rack = make_rack(3)
    code, out, err = run(rack, ["bootstrap", "--on-failure", "exclude", "--json", *FAST])
    assert code == 0, out + err
    states = rack.node_states()
    assert {s["state"] for s in states.values()} == {"ready"}, states
    assert {s["attempt"] for s in states.values()} == {1}, states  # no deadline missed
    # The node logs (appended by the writer thread) have every step, in order.
    log = rack.directory / "state" / "bootstrap" / "sim-770001" / "attempt-1.jsonl"
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    phases = [e["new"] for e in entries if e.get("source") == "bootstrap"]
    assert phases[0] == "pending" and phases[-1] == "ready", phases
    assert {"dhcp", "tftp", "http", "phone-home"} <= {e["source"] for e in entries}
