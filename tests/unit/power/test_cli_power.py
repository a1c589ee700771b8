"""racker power / bootdev / bmc check / console through click, with the fake driver."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"
PASSWORD = "cli-pw-do-not-print"  # noqa: S105 - searched for in the output


@pytest.fixture
def rack(tmp_path: Path) -> list[str]:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    runner = CliRunner()
    init = ["factory", "init", "--oem-dir", str(oem), "--user", "admin", "--password-stdin"]
    assert runner.invoke(cli, init, input=PASSWORD + "\n").exit_code == 0
    config = tmp_path / "racker.yaml"
    config.write_text(
        "bmc:\n  driver: fake\n  addresses:\n"
        '    "2": 127.0.0.2\n    red-990020: 127.0.0.3\n'
        '    "52:54:00:99:01:30": "127.0.0.4:6230"\n'
        '    "52:54:00:99:00:40": 127.0.0.5\n    "6": 127.0.0.6\n'
    )
    return ["--oem-dir", str(oem), "--state-dir", str(tmp_path / "state"), "--config", str(config)]


def run(rack: list[str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [*args, *rack])
    assert PASSWORD not in result.output
    return result.exit_code, result.output


def test_power_on_then_status_across_commands(rack: list[str]) -> None:
    code, out = run(rack, "power", "2", "red-990020", "on")
    assert code == 0, out
    assert "✓ red-990010 (127.0.0.2): power on requested" in out
    code, out = run(rack, "power", "--all", "status", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["node"], r["result"]) for r in rows] == [
        ("red-990010", "on"),
        ("red-990020", "on"),
        ("purple-990030", "off"),
        ("purple-990040", "off"),
        ("purple-990050", "off"),
    ]
    assert rows[2]["address"] == "127.0.0.4:6230"


def test_bootdev_sets_the_next_boot(rack: list[str]) -> None:
    code, out = run(rack, "bootdev", "52:54:00:99:00:20", "pxe", "--efi")
    assert (code, out) == (0, "✓ red-990020 (127.0.0.3): next boot: pxe (efi)\n")
    code, out = run(rack, "bootdev", "4", "disk", "--persistent")
    assert "every boot: disk (persistent)" in out
    code, out = run(rack, "bmc", "check", "--json")
    boots = {r["node"]: r["boot"] for r in json.loads(out)}
    assert boots["red-990020"] == "pxe (efi)"
    assert boots["purple-990030"] == "disk (persistent)"


def test_bmc_check_skips_the_management_bmc_unless_bmc_addresses_names_it(
    rack: list[str], tmp_path: Path
) -> None:
    code, out = run(rack, "bmc", "check", "--json")
    rows = json.loads(out)
    # The management node's BMC is on the public side: not asked, and every node's BMC answers.
    assert code == 0, out
    assert "red-990001" not in {r["node"] for r in rows}
    assert all(r["ok"] for r in rows) and len(rows) == 5
    code, out = run(rack, "bmc", "check")
    assert "BMCs (5/5 fine)" in out
    # Named in bmc.addresses, it is checked like the others.
    config = Path(rack[rack.index("--config") + 1])
    config.write_text(config.read_text() + '    "1": 127.0.0.7\n')
    code, out = run(rack, "bmc", "check", "--json")
    rows = json.loads(out)
    assert code == 0, out
    assert rows[0]["node"] == "red-990001" and rows[0]["address"] == "127.0.0.7"


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["power", "1", "off"], 3, "is the management node"),
        (["power", "9", "off"], 3, "no node '9'"),
        (["power", "2", "sideways"], 2, "'sideways' is not one of status, on, off"),
        (["power", "status"], 3, "no NODE given"),
        (["bootdev", "2", "floppy"], 2, "'floppy' is not one of pxe, disk, bios"),
        (["power", "--all", "on", "--driver", "nope"], 2, "'nope' is not one of"),
    ],
)
def test_usage_errors_say_what_to_do(
    rack: list[str], args: list[str], code: int, text: str
) -> None:
    got, out = run(rack, *args)
    assert got == code
    assert text in out


def test_a_failed_bmc_exits_5_and_the_others_still_run(rack: list[str], tmp_path: Path) -> None:
    # Node 5 has no static address and racker serve never allocated one.
    config = Path(rack[-1])
    config.write_text(config.read_text().replace('    "52:54:00:99:00:40": 127.0.0.5\n', ""))
    code, out = run(rack, "power", "4", "5", "on")
    assert code == 5
    assert "✓ purple-990030 (127.0.0.4:6230): power on requested" in out
    assert "✗ purple-990040: no address allocated for BMC MAC 52:54:00:99:01:40" in out
    assert "hint: run 'racker serve' once" in out


def test_console_runs_ipmitool_with_the_password_in_the_environment(
    rack: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    fake = tmp_path / "ipmitool"
    fake.write_text(f'#!/bin/sh\necho "$* | $IPMI_PASSWORD" >> {seen}\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    code, out = run(rack, "console", "2")
    assert code == 0, out
    deactivate, activate = seen.read_text().splitlines()
    assert activate == (
        f"-I lanplus -C 3 -H 127.0.0.2 -p 623 -U admin -E sol activate | {PASSWORD}"
    )
    assert deactivate.startswith("-I lanplus -C 3 -H 127.0.0.2")
    assert "sol deactivate" in deactivate


def test_driver_choices_come_from_the_registry(rack: list[str]) -> None:
    code, out = run(rack, "power", "--help")
    assert code == 0
    assert "[auto|fake|ipmi|redfish]" in out and "else auto" in out
    code, out = run(rack, "power", "2", "status", "--driver", "snmp")
    assert code == 2 and "'snmp' is not one of 'auto', 'fake', 'ipmi', 'redfish'" in out


def test_bmc_check_table_has_the_protocol(rack: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    _code, out = run(rack, "bmc", "check")
    assert "Protocol" in out and "│ fake " in out
    _code, out = run(rack, "bmc", "check", "--json")
    assert [r["protocol"] for r in json.loads(out)] == ["fake"] * 5


def test_console_refuses_a_redfish_only_bmc_before_ipmitool(
    rack: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    fake = tmp_path / "ipmitool"
    fake.write_text(f"#!/bin/sh\necho called >> {seen}\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    config = Path(rack[-1])
    config.write_text(
        config.read_text()
        .replace("driver: fake", "driver: redfish")
        .replace('"2": 127.0.0.2', '"2": https://127.0.0.2:8443')
    )
    code, out = run(rack, "console", "2")
    assert code == 5, out
    assert "no serial console: the BMC at https://127.0.0.2:8443 is given as a Redfish URL" in out
    assert "Redfish has no serial-over-LAN" in out and "hint:" in out
    assert not seen.exists()


def test_bootdev_http_is_a_uefi_boot(rack: list[str]) -> None:
    code, out = run(rack, "bootdev", "2", "http")
    assert (code, out) == (0, "✓ red-990010 (127.0.0.2): next boot: http (efi)\n")
    code, out = run(rack, "bootdev", "2", "cd")
    assert code == 2 and "not one of pxe, disk, bios, http" in out
