"""``racker selftest``: real clients against the running ``racker serve`` on this machine."""

from __future__ import annotations

import json
import sys

import click

from racker.cli.root import options_of, rack_options


@click.command("selftest")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@click.option(
    "--only",
    type=click.Choice(["dhcp", "tftp", "http"]),
    multiple=True,
    help="Test only this service (repeatable). [default: all three]",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.2, 60),
    default=3.0,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@rack_options
@click.pass_context
def selftest_cmd(
    ctx: click.Context, as_json: bool, interface: str | None, only: tuple[str, ...], timeout: float
) -> None:
    """Test the running racker serve with real clients (root, on the management node).

    DHCP: DISCOVER, OFFER, REQUEST, ACK as BIOS PXE, UEFI PXE, iPXE and UEFI HTTP boot clients
    (scapy), answered without a lease; TFTP: each first stage fetched (tftpy) and compared with
    its file; HTTP: GET /boot.ipxe and /healthz. Exit 0 when every check passes, else 1.
    """
    from racker.app.load import load_rack
    from racker.selftest.report import as_json as report_json
    from racker.selftest.report import as_text, passed
    from racker.selftest.run import SERVICES, run_selftest
    from racker.selftest.target import target_of

    target = target_of(load_rack(options_of(ctx, interface)))
    checks = run_selftest(target, only or SERVICES, timeout)
    if as_json:
        click.echo(json.dumps(report_json(checks), indent=2))
    else:
        for line in as_text(checks):
            click.echo(line)
    sys.exit(0 if passed(checks) else 1)
