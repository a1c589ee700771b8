"""racker power / bootdev / bmc check with the real IPMI driver against ipmi_sim BMCs
(addresses from racker.yaml's bmc.addresses; credentials from the OEM files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli
from tests.support.bmcsim import BmcSim

pytestmark = pytest.mark.root

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


def rack_args(tmp_path: Path, sim: BmcSim, hosts: dict[str, str]) -> list[str]:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    init = ["factory", "init", "--oem-dir", str(oem), "--user", sim.user, "--password-stdin"]
    assert CliRunner().invoke(cli, init, input=sim.password + "\n").exit_code == 0
    config = tmp_path / "racker.yaml"
    lines = "".join(f'    "{node}": "{host}"\n' for node, host in hosts.items())
    config.write_text(f"bmc:\n  timeout: 3\n  addresses:\n{lines}")
    return ["--oem-dir", str(oem), "--state-dir", str(tmp_path / "state"), "--config", str(config)]


def test_power_bootdev_and_check_reach_real_bmcs(sim: BmcSim, tmp_path: Path) -> None:
    a, b = sim.start(2)
    args = rack_args(tmp_path, sim, {"2": a.host, "red-990020": b.host, "4": "127.0.6.253"})
    runner = CliRunner()

    result = runner.invoke(cli, ["power", "2", "3", "on", *args])
    assert result.exit_code == 0, result.output
    assert (a.power, b.power) == ("1", "1")

    result = runner.invoke(cli, ["bootdev", "52:54:00:99:01:10", "pxe", "--efi", *args])
    assert result.exit_code == 0, result.output
    assert a.calls()[-1] == "set boot pxe"

    result = runner.invoke(cli, ["bmc", "check", "--json", *args])
    assert result.exit_code == 1  # rows 5, 6 have no address; row 4 does not answer
    rows = {r["row"]: r for r in json.loads(result.stdout)}
    assert (rows[2]["ok"], rows[2]["power"], rows[2]["firmware"]) == (
        True,
        "on",
        "9.08 (IANA 4753)",
    )
    assert rows[3]["ok"]
    assert (rows[4]["reachable"], rows[4]["address"]) == (False, "127.0.6.253")
    assert 1 not in rows  # the management node's BMC is on the public side: not asked
    assert rows[5]["reachable"] is None
    assert sim.password not in result.output


def test_bmc_check_of_a_rack_whose_node_bmcs_all_answer_exits_0(
    sim: BmcSim, tmp_path: Path
) -> None:
    """The management row is in nodes.csv, its BMC (public side) is not in bmc.addresses."""
    bmcs = sim.start(5)
    args = rack_args(
        tmp_path, sim, {str(row): b.host for row, b in zip(range(2, 7), bmcs, strict=True)}
    )
    result = CliRunner().invoke(cli, ["bmc", "check", "--json", *args])
    rows = json.loads(result.stdout)
    assert result.exit_code == 0, result.output
    assert sorted(r["row"] for r in rows) == [2, 3, 4, 5, 6]
    assert all(r["ok"] for r in rows)
