"""The CLI through click's CliRunner: output, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker import __version__
from racker.cli import cli

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def oem(tmp_path: Path, runner: CliRunner) -> Path:
    directory = tmp_path / "oem"
    shutil.copytree(EXAMPLE, directory)
    result = runner.invoke(
        cli,
        ["factory", "init", "--oem-dir", str(directory), "--user", "admin", "--password-stdin"],
        input="pw-from-stdin\n",
    )
    assert result.exit_code == 0, result.output
    return directory


def test_help_lists_every_command(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("factory", "version"):
        assert command in result.output


def test_version(runner: CliRunner) -> None:
    assert runner.invoke(cli, ["version"]).output == f"racker {__version__}\n"
    assert __version__ in runner.invoke(cli, ["--version"]).output


def test_init_keeps_existing_nodes_csv_and_writes_private_credentials(oem: Path) -> None:
    assert (oem / "nodes.csv").read_text() == (EXAMPLE / "nodes.csv").read_text()
    assert (oem / "ipmi_password").read_text() == "pw-from-stdin\n"
    for name in ("ipmi_user", "ipmi_password"):
        assert stat.S_IMODE(os.stat(oem / name).st_mode) == 0o600


def test_init_in_an_empty_directory_writes_a_template_that_check_explains(
    tmp_path: Path, runner: CliRunner
) -> None:
    directory = tmp_path / "new"
    result = runner.invoke(
        cli,
        [
            "--oem-dir",
            str(directory),
            "factory",
            "init",
            "--user",
            "u",
            "--password-stdin",
            "--pxe-interface",
            "52-54-00-AA-BB-CC",
        ],
        input="pw\n",
    )
    assert result.exit_code == 0, result.output
    assert (directory / "nodes.csv").read_text().startswith("Primary MAC address, BMC MAC")
    assert (directory / "pxe_interface").read_text() == "52:54:00:aa:bb:cc\n"
    check = runner.invoke(cli, ["factory", "check", "--offline", "--oem-dir", str(directory)])
    assert check.exit_code == 1
    assert "no servers listed" in check.output


def test_init_refuses_to_overwrite_credentials_without_force(oem: Path, runner: CliRunner) -> None:
    args = ["factory", "init", "--oem-dir", str(oem), "--user", "x", "--password-stdin"]
    result = runner.invoke(cli, args, input="other\n")
    assert result.exit_code == 1
    assert "already has ipmi_user, ipmi_password" in result.output
    assert runner.invoke(cli, [*args, "--force"], input="other\n").exit_code == 0
    assert (oem / "ipmi_password").read_text() == "other\n"


def test_password_is_never_an_argument(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(
        cli, ["factory", "init", "--oem-dir", str(tmp_path), "--user", "u", "--password", "x"]
    )
    assert result.exit_code == 2
    result = runner.invoke(cli, ["factory", "init", "--oem-dir", str(tmp_path), "--user", "u"])
    assert result.exit_code == 1
    assert "--password-stdin" in result.output


def test_check_offline_on_the_example_rack(oem: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["factory", "check", "--offline", "--oem-dir", str(oem)])
    assert result.exit_code == 0, result.output
    assert "✓ management node: line 3, 52:54:00:99:00:01" in result.output
    assert "nodes to provision by type: purple: 3, red: 2" in result.output
    assert "✗" not in result.output
    assert "pw-from-stdin" not in result.output


def test_check_json(oem: Path, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["factory", "check", "--offline", "--json", "--oem-dir", str(oem)])
    data = json.loads(result.output)
    assert data["ok"] is True
    assert data["management"] == "52:54:00:99:00:01"
    assert data["node_types"] == {"red": 2, "purple": 3}


def test_check_reports_every_problem_at_once(oem: Path, runner: CliRunner) -> None:
    (oem / "ipmi_password").chmod(0o640)
    with (oem / "nodes.csv").open("a") as f:
        f.write("52:54:00:99:00:10, 52:54:00:99:09:10, 52:54:00:99:0a:10, red, duplicate\n")
        f.write("zz, 52:54:00:99:09:11, 52:54:00:99:0a:11, red, bad\n")
    result = runner.invoke(cli, ["factory", "check", "--offline", "--oem-dir", str(oem)])
    assert result.exit_code == 1
    assert (
        "nodes.csv:9: Primary MAC address 52:54:00:99:00:10 already appears on line 4"
        in result.output
    )
    assert "nodes.csv:10: Primary MAC address is not a MAC address (got 'zz')" in result.output
    assert "is readable by others (mode 0640)" in result.output
    assert "hint: chmod 600" in result.output


def test_check_without_pxe_interface_on_this_machine_fails_with_a_hint(
    oem: Path, runner: CliRunner
) -> None:
    # The example's PXE MAC belongs to no interface of this machine.
    result = runner.invoke(cli, ["factory", "check", "--oem-dir", str(oem)])
    assert result.exit_code == 1
    assert "no local interface has the PXE MAC 52:54:00:99:02:01" in result.output
    assert "--interface" in result.output


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--config", "/nonexistent/racker.yaml", "factory", "check"], 1, "file not found"),
        (["factory", "check", "--bogus"], 2, "No such option"),
        (["nosuchcommand"], 2, "No such command"),
    ],
)
def test_errors_are_one_line_not_tracebacks(
    runner: CliRunner, args: list[str], code: int, fragment: str
) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == code
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_racker_error_exit_code_and_hint(runner: CliRunner, tmp_path: Path) -> None:
    # Non-interactive init without --user: a RackerError, exit 1, with its hint.
    result = runner.invoke(cli, ["factory", "init", "--oem-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("error: --user is required")
    assert "hint: pass --user NAME" in result.output


def test_rack_options_before_after_and_from_the_environment(
    oem: Path, runner: CliRunner, tmp_path: Path
) -> None:
    args = ["factory", "check", "--offline"]
    empty = str(tmp_path / "empty")
    # From the environment alone.
    assert runner.invoke(cli, args, env={"RACKER_OEM_DIR": str(oem)}).exit_code == 0
    # A flag beats the environment, before or after the command name.
    assert (
        runner.invoke(cli, [*args, "--oem-dir", str(oem)], env={"RACKER_OEM_DIR": empty}).exit_code
        == 0
    )
    assert (
        runner.invoke(cli, ["--oem-dir", str(oem), *args], env={"RACKER_OEM_DIR": empty}).exit_code
        == 0
    )
    # The flag after the command name wins over the one before it.
    assert runner.invoke(cli, ["--oem-dir", empty, *args, "--oem-dir", str(oem)]).exit_code == 0
    assert runner.invoke(cli, ["--oem-dir", str(oem), *args, "--oem-dir", empty]).exit_code == 1
