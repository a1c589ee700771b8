"""``racker serve``: the boot stack (DHCP, TFTP, HTTP) on the PXE interface."""

from __future__ import annotations

import os

import click

from racker.cli.root import event_loop_choice, options_of, rack_options


@click.command("serve")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def serve(ctx: click.Context, interface: str | None) -> None:
    """Run the boot stack (DHCP, TFTP, HTTP) on the PXE interface until SIGINT/SIGTERM."""
    from racker.app.load import configure_pxe_address, load_rack, open_store
    from racker.app.run import run_event_loop, serve_until_signal
    from racker.app.stack import BootStack

    rack = configure_pxe_address(load_rack(options_of(ctx, interface)))
    with open_store(rack) as store:
        stack = BootStack(rack, store)

        def ready() -> None:
            names = ", ".join(type(s).__name__ for s in stack.servers)
            click.echo(
                f"racker serve: ready on {rack.interface.name} ({stack.server_ip}): {names}",
                err=True,
            )

        # SIGHUP re-reads racker.yaml, the OEM files and the profiles.
        reread = lambda: load_rack(options_of(ctx, interface))  # noqa: E731
        # Under systemd (a Type=notify unit), READY=1 and STOPPING=1 go to $NOTIFY_SOCKET.
        notify_socket = os.environ.get("NOTIFY_SOCKET")
        run_event_loop(
            serve_until_signal(stack, ready, reread, notify_socket), loop=event_loop_choice()
        )
