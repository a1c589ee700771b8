"""racker bootstrap against a simulated rack: node processes in their own namespaces running
real DHCP/TFTP/HTTP clients, racker (the real CLI) in the server namespace with its boot stack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.simrack import SimRack, node_mac

pytestmark = [pytest.mark.root, pytest.mark.slow]

FAST = ["--stagger", "0", "--timeout-scale", "0.2"]


@pytest.fixture
def make_rack(tmp_path: Path) -> Iterator[object]:
    racks: list[SimRack] = []

    def make(count: int, **kwargs: object) -> SimRack:
        rack = SimRack(tmp_path / f"rack{len(racks)}", count, **kwargs)  # type: ignore[arg-type]
        racks.append(rack)
        return rack.__enter__()

    try:
        yield make
    finally:
        for rack in racks:
            rack.close()


def run(rack: SimRack, args: list[str], timeout: float = 240, **kw: object) -> tuple[int, str, str]:
    proc = rack.racker(args, **kw)  # type: ignore[arg-type]
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"racker did not finish in {timeout} s:\n{out[-3000:]}\n{err[-3000:]}")
    return proc.returncode, out, err


def test_ten_nodes_all_become_ready_then_status(make_rack) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(10, behaviour={3: ["pxe-first"]})
    code, out, err = run(rack, ["bootstrap", "--on-failure", "exclude", *FAST])
    assert code == 0, out + err
    assert "done: 10/10 node(s) ready" in out
    # the node that PXE boots again after its install was told to boot from disk
    node_log = (rack.directory / "nodes" / f"{node_mac(3)}.log").read_text()
    assert node_log.count("PXE boot") == 1, node_log
    assert "no boot file offered: booting from disk" in node_log
    states = rack.node_states()
    assert {s["state"] for s in states.values()} == {"ready"}, states
    assert {s["attempt"] for s in states.values()} == {1}
    # per-attempt node logs under the state directory
    log = rack.directory / "state" / "bootstrap" / "sim-770001" / "attempt-1.jsonl"
    sources = {json.loads(line)["source"] for line in log.read_text().splitlines()}
    assert {"dhcp", "tftp", "http", "phone-home", "bootstrap"} <= sources

    code, out, err = run(rack, ["status", "--json"])
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 10
    row = rows[0]
    assert row["state"] == "ready"
    assert row["bmc_reachable"] is True
    assert row["power"] == "on"
    assert row["boot_device"] == "disk (persistent)"
    assert row["address"].startswith("10.77.")
    assert row["last_event"]

    # a second bootstrap skips ready nodes and succeeds at once
    code, out, _ = run(rack, ["bootstrap", "--json", *FAST])
    assert code == 0
    summary = json.loads(out.splitlines()[-1])
    assert summary["kind"] == "summary"
    assert summary["ok"] is True


def test_faults_are_retried_and_reported(make_rack) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(4, behaviour={2: ["bmc-dead"], 3: ["ignore-bootdev"], 4: ["fail-install"]})
    args = ["bootstrap", "--retries", "1", "--on-failure", "exclude", "--json"]
    code, out, err = run(rack, [*args, "--stagger", "0", "--timeout-scale", "0.04"])
    assert code == 1, out + err
    states = rack.node_states()
    assert states[node_mac(1)]["state"] == "ready"
    for i in (2, 3, 4):
        assert states[node_mac(i)]["state"] == "failed"
        assert states[node_mac(i)]["attempt"] == 2
    assert "no answer from the BMC" in states[node_mac(2)]["reason"]
    assert "no DHCP request" in states[node_mac(3)]["reason"]
    assert "no install disk" in states[node_mac(4)]["reason"]
    # the node that never PXE booted got a persistent PXE boot device on its retry
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    armed = [
        e
        for e in events
        if e.get("source") == "bmc"
        and e.get("node") == "sim-770003"
        and e["action"] == "bootdev-pxe"
    ]
    assert len(armed) == 2
    fake = json.loads((rack.directory / "state" / "fake-bmcs.json").read_text())
    persistent = [v["boot"] for v in fake.values() if v["boot"]["device"] == "pxe"]
    assert {"device": "pxe", "persistent": True, "efi": False} in persistent
    summary = events[-1]
    assert summary["kind"] == "summary"
    assert summary["ok"] is False


def test_packet_loss(make_rack) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(5, behaviour={i: ["loss"] for i in range(1, 6)})
    code, out, err = run(rack, ["bootstrap", "--retries", "3", "--on-failure", "exclude", *FAST])
    assert code == 0, out + err
    assert {s["state"] for s in rack.node_states().values()} == {"ready"}
    assert rack.dropped() > 0  # the loss was real


def test_sigkill_then_resume_and_lock(make_rack) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(4)
    first = rack.racker(
        ["bootstrap", "--on-failure", "exclude", "--stagger", "0.5", "--timeout-scale", "0.5"]
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = rack.node_states()
            if any(
                s["state"]
                in (
                    "loader-fetched",
                    "script-fetched",
                    "kernel-fetched",
                    "ignition-fetched",
                    "installing",
                )
                for s in states.values()
            ):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"no node got going: {rack.node_states()}")
        code, _, err = run(rack, ["bootstrap"], timeout=60)
        assert code == 4, err
        assert "another racker bootstrap is running" in err
        os.killpg(first.pid, signal.SIGKILL)
        first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    killed_at = rack.node_states()
    assert any(s["state"] != "ready" for s in killed_at.values()), killed_at
    code, out, err = run(rack, ["bootstrap", "--on-failure", "exclude", *FAST])
    assert code == 0, out + err
    states = rack.node_states()
    assert {s["state"] for s in states.values()} == {"ready"}
    # resumed where they were: nobody needed a second attempt
    assert {s["attempt"] for s in states.values()} == {1}


STUB_LOKOCTL = """#!/bin/sh
printf '%s\\n' "$@" > "{out}/lokoctl.args"
cp cluster.lokocfg "{out}/lokoctl.cfg"
"""


def test_lokomotive_plan_runs_lokoctl(make_rack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(4, node_types={1: "big", 2: "big", 3: "small", 4: "small"})
    # an impossible plan is refused before anything is powered
    code, _, err = run(
        rack,
        [
            "bootstrap",
            "--provision",
            "lokomotive",
            "--controllers",
            "3",
            "--controller-type",
            "big",
        ],
    )
    assert code == 2
    assert "3 controllers of type 'big' wanted" in err
    assert not (rack.directory / "state" / "fake-bmcs.json").exists()

    code, out, _ = run(
        rack,
        [
            "bootstrap",
            "--provision",
            "lokomotive",
            "--controller-type",
            "small",
            "--storage-type",
            "big",
            "--storage-count",
            "1",
            "--dry-run",
        ],
    )
    assert code == 0
    assert "provision lokomotive on 4 node(s)" in out
    assert not (rack.directory / "state" / "fake-bmcs.json").exists()

    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    (stub_dir / "lokoctl").write_text(STUB_LOKOCTL.format(out=tmp_path))
    (stub_dir / "lokoctl").chmod(0o755)
    code, out, err = run(
        rack,
        [
            "bootstrap",
            "--provision",
            "lokomotive",
            "--controller-type",
            "small",
            "--storage-type",
            "big",
            "--storage-count",
            "1",
            "--cluster-name",
            "sim",
            "--on-failure",
            "exclude",
            *FAST,
        ],
        path_prepend=stub_dir,
    )
    assert code == 0, out + err
    args = (tmp_path / "lokoctl.args").read_text().split()
    assert args[:3] == ["cluster", "apply", "--confirm"]
    config = (tmp_path / "lokoctl.cfg").read_text()
    assert 'cluster_name           = "sim"' in config
    assert f'controller_macs    = [\n    "{node_mac(3)}",\n  ]' in config
    assert node_mac(1) in config  # storage worker
    assert '"big-770001" = "storage.racker.io/node=true"' in config


def test_bootstrap_follows_a_running_serve(make_rack) -> None:  # type: ignore[no-untyped-def]
    rack = make_rack(3)
    serve = rack.racker(["serve"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and serve.poll() is None:
            probe = subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    rack.server_ns,
                    "curl",
                    "-fsS",
                    "-m",
                    "1",
                    "http://10.77.0.1:8080/healthz",
                ],
                capture_output=True,
                check=False,
            )
            if probe.returncode == 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"racker serve did not come up: {serve.communicate(timeout=5)}")
        code, out, err = run(rack, ["-v", "bootstrap", "--on-failure", "exclude", *FAST])
        assert code == 0, out + err
        # never two boot stacks on one interface: bootstrap followed serve's event log
        assert "a boot stack already runs on 10.77.0.1: following it" in err
        assert {s["state"] for s in rack.node_states().values()} == {"ready"}
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        try:
            serve.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.communicate()
