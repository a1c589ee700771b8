"""racker power / bootdev / bmc check / console against emulated Redfish BMCs through the CLI:
a URL in bmc.addresses (plain HTTP) and a host:port that bmc.driver auto finds to be Redfish
over HTTPS (certificate checked against bmc.verify_tls); credentials from the OEM files."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from racker.cli import cli
from tests.support.redfish import RedfishLab

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


def rack_args(tmp_path: Path, lab: RedfishLab, bmc_lines: str) -> list[str]:
    oem = tmp_path / "oem"
    shutil.copytree(EXAMPLE, oem)
    init = ["factory", "init", "--oem-dir", str(oem), "--user", lab.user, "--password-stdin"]
    assert CliRunner().invoke(cli, init, input=lab.password + "\n").exit_code == 0
    config = tmp_path / "racker.yaml"
    config.write_text(bmc_lines)
    return ["--oem-dir", str(oem), "--state-dir", str(tmp_path / "state"), "--config", str(config)]


def test_power_bootdev_check_and_console_over_redfish(
    tmp_path: Path, lab: RedfishLab, tls_lab: RedfishLab
) -> None:
    tls_lab.password = lab.password  # one rack, one OEM password
    tls_lab.write_users(lab.password)
    plain, secure = lab.start(), tls_lab.start()
    args = rack_args(
        tmp_path,
        lab,
        "bmc:\n  timeout: 2\n"
        f"  verify_tls: {tls_lab.ca}\n"
        "  addresses:\n"
        f'    "2": "{plain.url}"\n'
        f'    "3": "127.0.0.1:{secure.port}"\n'
        '    "4": "127.0.0.1:1"\n',
    )
    runner = CliRunner()

    result = runner.invoke(cli, ["power", "2", "3", "on", *args])
    assert result.exit_code == 0, result.output
    assert plain.system()["PowerState"] == secure.system()["PowerState"] == "On"
    assert lab.password not in result.output

    result = runner.invoke(cli, ["bootdev", "2", "3", "pxe", "--efi", *args])
    assert result.exit_code == 0, result.output
    assert secure.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"

    result = runner.invoke(cli, ["bmc", "check", "--json", *args])
    rows = {r["node"]: r for r in json.loads(result.output)}
    assert result.exit_code == 1  # row 4 answers nothing, and the others are not BMCs here
    assert [(rows[n]["protocol"], rows[n]["power"]) for n in ("red-990010", "red-990020")] == [
        ("redfish", "on"),
        ("redfish", "on"),
    ]
    assert rows["purple-990030"]["protocol"] == "" and not rows["purple-990030"]["ok"]

    # A Redfish-only BMC has no serial console: said at once, ipmitool never started.
    result = runner.invoke(cli, ["console", "3", *args])
    assert result.exit_code == 5
    assert "answers Redfish only (no IPMI)" in result.output
    assert "Redfish has no serial-over-LAN" in result.output
    assert lab.password not in result.output


def test_debug_output_shows_sushy_but_no_secret(tmp_path: Path, lab: RedfishLab) -> None:
    bmc = lab.start()
    args = rack_args(tmp_path, lab, f'bmc:\n  timeout: 3\n  addresses:\n    "2": "{bmc.url}"\n')
    oem_password = lab.password
    lab.write_users("the-bmc-has-another-one")  # the OEM files' password is now refused
    result = CliRunner().invoke(cli, ["-vv", "power", "2", "status", *args])
    assert result.exit_code == 5
    assert "rejected the credentials (HTTP 401)" in result.output
    assert "sushy.connector" in result.output  # -vv shows sushy's requests ...
    basic = base64.b64encode(f"{lab.user}:{oem_password}".encode()).decode()
    for secret in (oem_password, basic, "the-bmc-has-another-one"):
        assert secret not in result.output  # ... and no password or Basic token
