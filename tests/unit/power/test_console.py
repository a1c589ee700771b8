"""The SOL console command line: the password goes through the environment only."""

from __future__ import annotations

from racker.power.base import BmcCredentials, BmcTarget
from racker.power.console import ipmitool_command, sol_activate, sol_deactivate

from .conftest import PASSWORD


def test_sol_commands_keep_the_password_out_of_argv(credentials: BmcCredentials) -> None:
    t = BmcTarget("worker-000003", "10.0.0.131", credentials, 6230)
    argv, env = sol_activate(t, "/usr/bin/ipmitool")
    assert argv == [
        "/usr/bin/ipmitool", "-I", "lanplus", "-C", "3", "-H", "10.0.0.131", "-p", "6230",
        "-U", "admin", "-E", "sol", "activate",
    ]  # fmt: skip
    assert env == {"IPMI_PASSWORD": PASSWORD}
    assert all(PASSWORD not in arg for arg in argv)
    assert sol_deactivate(t)[0][-2:] == ["sol", "deactivate"]
    assert ipmitool_command(t, "chassis", "power", "status")[0][-3:] == [
        "chassis",
        "power",
        "status",
    ]


def test_user_names_with_spaces_stay_one_argument() -> None:
    t = BmcTarget("n", "h", BmcCredentials("ops user", "x"))
    argv, _ = sol_activate(t)
    assert argv[argv.index("-U") + 1] == "ops user"
