"""``racker factory``: prepare and validate the rack metadata in the OEM directory."""

from __future__ import annotations

import json
import sys

import click

from racker.cli.root import options_of, rack_options
from racker.errors import RackerError


@click.group("factory")
def factory() -> None:
    """Prepare and validate the rack metadata in the OEM directory."""


@factory.command("check")
@click.option(
    "--offline", is_flag=True, help="Check the files only, not this machine's interfaces."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@click.option(
    "--probe",
    is_flag=True,
    help="Also send a DHCPDISCOVER on the PXE interface and list every DHCP server that"
    " answers; exit 1 when one other than racker does (root).",
)
@click.option(
    "--probe-seconds",
    type=click.FloatRange(0.5, 60),
    default=5.0,
    show_default=True,
    help="How long --probe listens for answers (dnsmasq, in many home routers, pings an"
    " address for 3 s before it offers it).",
)
@rack_options
@click.pass_context
def factory_check_cmd(
    ctx: click.Context,
    offline: bool,
    as_json: bool,
    interface: str | None,
    probe: bool,
    probe_seconds: float,
) -> None:
    """Validate nodes.csv, the BMC credentials and the PXE interface; exit 1 when invalid."""
    from racker.rack.report import factory_check

    if probe and offline:
        raise RackerError("--probe needs the PXE interface; --offline leaves it out")
    report = factory_check(options_of(ctx, interface), offline=offline)
    probed = None
    if probe and report.interface is None:
        from racker.rack.report import Check

        report.checks.append(Check(False, "DHCP probe not run: no PXE interface (--interface IF)"))
    elif probe and report.interface is not None:
        from racker.dhcp.probe import probe_check, probe_dhcp_servers

        racker_macs = {report.interface.mac} if report.interface.mac else set()
        if report.inventory is not None and report.inventory.pxe_interface_mac:
            racker_macs.add(report.inventory.pxe_interface_mac)
        racker_ips = {str(report.plan.server)} if report.plan is not None else set()
        probed = probe_dhcp_servers(report.interface.name, probe_seconds, racker_ips, racker_macs)
        report.checks.append(probe_check(probed))
    if as_json:
        data = report.to_dict()
        if probed is not None:
            data["dhcp_probe"] = probed.to_dict()
        click.echo(json.dumps(data, indent=2))
    else:
        for check in report.checks:
            mark = click.style("✓", fg="green") if check.ok else click.style("✗", fg="red")
            click.echo(f"{mark} {check.title}")
            for detail in check.details:
                click.echo(f"    {detail}")
            for problem in check.problems:
                click.echo(f"    {problem}")
                if problem.hint:
                    click.echo(f"      hint: {problem.hint}")
        click.echo("rack metadata is valid" if report.ok else "rack metadata is NOT valid")
    sys.exit(0 if report.ok else 1)


@factory.command("init")
@click.option("--user", help="BMC user name (prompted on a terminal when missing).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the BMC password from standard input (it is never taken from arguments).",
)
@click.option("--pxe-interface", "pxe_mac", help="MAC of this machine's PXE (internal) NIC.")
@click.option(
    "--secondary/--no-secondary",
    default=True,
    show_default=True,
    help="Write the 5-column nodes.csv template (with Secondary MAC address).",
)
@click.option("--force", is_flag=True, help="Overwrite existing credential files.")
@rack_options
@click.pass_context
def factory_init_cmd(
    ctx: click.Context,
    user: str | None,
    password_stdin: bool,
    pxe_mac: str | None,
    secondary: bool,
    force: bool,
) -> None:
    """Write the BMC credential files (mode 0600), and a nodes.csv template if none exists."""
    from racker.errors import ConfigError, Problem
    from racker.model import parse_mac
    from racker.rack.loading import oem_dir, read_config
    from racker.rack.oem import (
        IPMI_PASSWORD,
        IPMI_USER,
        NODES_CSV,
        Secret,
        write_credentials,
        write_nodes_template,
        write_pxe_interface,
    )

    options = options_of(ctx)
    directory = oem_dir(options, read_config(options))
    interactive = sys.stdin.isatty() and not password_stdin
    existing = [n for n in (IPMI_USER, IPMI_PASSWORD) if (directory / n).exists()]
    if existing and not force:
        raise RackerError(
            f"{directory} already has {', '.join(existing)}",
            "pass --force to overwrite them, or edit them and run 'racker factory check'",
        )
    if user is None:
        if not interactive:
            raise RackerError("--user is required when not on a terminal", "pass --user NAME")
        user = click.prompt("BMC user name")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif interactive:
        password = click.prompt("BMC password", hide_input=True, confirmation_prompt=True)
    else:
        raise RackerError(
            "no BMC password given", "pipe it in with --password-stdin (never on the command line)"
        )
    if not user.strip() or not password:
        raise RackerError("the BMC user name and password must not be empty")
    if pxe_mac is not None:
        mac = parse_mac(pxe_mac)
        if mac is None:
            raise ConfigError(
                [Problem("--pxe-interface", None, "not a MAC address", None, pxe_mac)]
            )
        write_pxe_interface(directory, mac)
    csv_path = directory / NODES_CSV
    written = [IPMI_USER, IPMI_PASSWORD]
    if not csv_path.exists():
        write_nodes_template(directory, secondary)
        written.insert(0, f"{NODES_CSV} (template)")
    write_credentials(directory, user.strip(), Secret(password))
    click.echo(f"wrote {', '.join(written)} in {directory} (credentials mode 0600)")
    if pxe_mac is not None:
        click.echo(f"wrote pxe_interface ({pxe_mac})")
    click.echo(f"next: list the servers in {csv_path}, then run 'racker factory check'")
