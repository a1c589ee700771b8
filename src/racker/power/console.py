"""``racker console NODE``: an interactive serial-over-LAN session (layer 2).

ipmitool does the terminal work (raw mode, the ``~.`` escape to leave, ``~?`` for help).
The password goes through the environment (``-E`` reads ``IPMI_PASSWORD``), never through
argv, which any local user can read in /proc. Cipher suite 3 (RAKP-HMAC-SHA1, AES-128) is what
every IPMI 2.0 BMC supports; without ``-C 3`` ipmitool first tries suite 17 and BMCs without it
cost a 10 s wait.

Redfish has no serial console (vendors offer theirs through their own web consoles), so a BMC
reached only over Redfish is refused with that said (``require_ipmi``), not left to ipmitool's
timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping

from racker.errors import BmcUnsupported, EnvironmentProblem
from racker.power.base import BmcTarget, PowerDriver

ESCAPE_HELP = "~. leaves the console, ~? lists the escapes"

# argv, and the variables to add to the environment
Command = tuple[list[str], dict[str, str]]


def ipmitool_command(target: BmcTarget, *args: str, ipmitool: str = "ipmitool") -> Command:
    """argv and extra environment for ``ipmitool ARGS`` against ``target``."""
    argv = [
        ipmitool,
        "-I",
        "lanplus",
        "-C",
        "3",
        "-H",
        target.host,
        "-p",
        str(target.port),
        "-U",
        target.credentials.user,
        "-E",
        *args,
    ]
    return argv, {"IPMI_PASSWORD": target.credentials.reveal()}


def sol_activate(target: BmcTarget, ipmitool: str = "ipmitool") -> Command:
    return ipmitool_command(target, "sol", "activate", ipmitool=ipmitool)


def sol_deactivate(target: BmcTarget, ipmitool: str = "ipmitool") -> Command:
    return ipmitool_command(target, "sol", "deactivate", ipmitool=ipmitool)


def run_console(target: BmcTarget, environ: Mapping[str, str] | None = None) -> int:
    """Attach this terminal to the node's serial console; return ipmitool's exit status."""
    ipmitool = shutil.which("ipmitool")
    if ipmitool is None:
        raise EnvironmentProblem(
            "ipmitool is not installed (racker console uses it for serial-over-LAN)",
            "apt-get install ipmitool",
        )
    env = dict(os.environ if environ is None else environ)
    # A session left active by an earlier client makes "activate" fail: clear it first.
    argv, extra = sol_deactivate(target, ipmitool)
    subprocess.run(argv, env={**env, **extra}, capture_output=True, check=False, timeout=30)
    argv, extra = sol_activate(target, ipmitool)
    return subprocess.run(argv, env={**env, **extra}, check=False).returncode


async def require_ipmi(driver: PowerDriver, target: BmcTarget) -> None:
    """Raise ``BmcUnsupported`` if ``target`` is reached only over Redfish (no serial-over-LAN):
    a Redfish URL in bmc.addresses, bmc.driver redfish, or, under auto, a BMC that serves
    Redfish and does not answer IPMI."""
    from racker.power.auto import AutoDriver

    protocol = await driver.detect_protocol(target)
    if protocol != "redfish":
        return
    if isinstance(driver, AutoDriver) and target.scheme is None:
        if await driver.ipmi_answers(target):
            return
        how = "answers Redfish only (no IPMI)"
    elif target.scheme is not None:
        how = "is given as a Redfish URL in bmc.addresses"
    else:
        how = "is driven over Redfish (bmc.driver: redfish)"
    raise BmcUnsupported(
        target.node,
        f"no serial console: the BMC at {target.address} {how}, and Redfish has no serial-over-LAN",
        "use the BMC's own web console, or enable IPMI over LAN on the BMC "
        "(then bmc.driver auto or ipmi, and host or host:port in bmc.addresses)",
    )
