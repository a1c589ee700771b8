"""Read-only commands work from the files and the store on any machine: no PXE interface.

This machine has none of the example rack's MACs, so ``racker serve`` would refuse to start
here ("no local interface has the PXE MAC"); ``racker status`` and ``racker bootstrap
--dry-run`` must not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli
from racker.rack.oem import Secret, write_credentials

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


@pytest.fixture
def rack(tmp_path: Path) -> list[str]:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    write_credentials(oem, "admin", Secret("pw"))
    config = tmp_path / "racker.yaml"
    config.write_text("bmc:\n  driver: fake\n")
    return ["--oem-dir", str(oem), "--state-dir", str(tmp_path / "state"), "--config", str(config)]


def test_the_example_rack_is_not_this_machine(rack: list[str]) -> None:
    result = CliRunner().invoke(cli, ["bootstrap", *rack])
    assert result.exit_code != 0
    assert "no local interface has the PXE MAC" in result.output


def test_status_without_a_pxe_interface(rack: list[str]) -> None:
    result = CliRunner().invoke(cli, ["status", "--json", *rack])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    macs = {row["primary_mac"] for row in rows}
    assert "52:54:00:99:00:10" in macs and "52:54:00:99:00:50" in macs
    assert all(row["state"] in {"unknown", "new"} for row in rows), rows


def test_bootstrap_dry_run_without_a_pxe_interface(rack: list[str]) -> None:
    result = CliRunner().invoke(cli, ["bootstrap", "--dry-run", *rack])
    assert result.exit_code == 0, result.output
    assert "52:54:00:99:00:10" in result.output or "red-990010" in result.output, result.output


def test_factory_check_says_a_missing_nodes_csv_is_missing(tmp_path: Path) -> None:
    empty = tmp_path / "oem"
    empty.mkdir()
    result = CliRunner().invoke(cli, ["factory", "check", "--offline", "--oem-dir", str(empty)])
    assert result.exit_code == 1
    assert f"✗ {empty}/nodes.csv: missing" in result.output
    assert "0 rows" not in result.output


def test_factory_check_hint_for_a_five_column_file_without_rows(tmp_path: Path) -> None:
    oem = tmp_path / "oem"
    oem.mkdir()
    header = (EXAMPLE / "nodes.csv").read_text().splitlines()[0]
    (oem / "nodes.csv").write_text(header + "\n")
    result = CliRunner().invoke(cli, ["factory", "check", "--oem-dir", str(oem)])
    assert result.exit_code == 1
    assert "0 rows, 5-column format" in result.output
    assert "add the management node's row to nodes.csv" in result.output
    assert "use the 5-column nodes.csv" not in result.output
