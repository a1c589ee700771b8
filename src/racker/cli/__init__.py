"""racker's command line (layer 6): the one place that reads flags and the environment and
exits. Commands are thin: they parse flags, call the composition root (``racker.app``), print
(all terminal output lives in this package), and exit.

Exit codes (docs/cli.md): 0 success; 1 a check or operation failed; 2 usage error;
3 bad input files (configuration, nodes.csv, credentials); 4 the machine lacks something
(interface, root, state directory); 5 a BMC failed; 130 interrupted.

Each module below is one group of commands; each imports its libraries inside its commands,
so that ``racker --help`` stays fast.
"""

from __future__ import annotations

import time

from racker.cli import (
    factory,
    install,
    power,
    provisioning,
    render_assets,
    selftest,
    serve,
    sim,
)
from racker.cli.root import JsonFormatter, cli, log, setup_logging

__all__ = ["JsonFormatter", "cli", "main", "setup_logging"]

COMMANDS = (
    factory.factory,  # factory check, factory init
    serve.serve,
    selftest.selftest_cmd,
    provisioning.bootstrap_cmd,
    provisioning.status_cmd,
    power.power_cmd,
    power.bootdev_cmd,
    power.console_cmd,
    power.bmc,  # bmc check
    render_assets.render_cmd,
    render_assets.assets,  # assets fetch, assets list
    install.version,
    install.install_cmd,
    install.install_on_host_cmd,  # the installer image's ENTRYPOINT
    install.uninstall_cmd,
    install.update_cmd,
    install.upgrade_cmd,
    install.rollback_cmd,
    sim.sim,  # sim up, sim down, sim status
    sim.demo_cmd,
)
for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    start = time.monotonic()
    try:
        cli.main(prog_name="racker")
    finally:
        log.debug("done in %.3f s", time.monotonic() - start)
