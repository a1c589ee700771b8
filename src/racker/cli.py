"""racker's command line (layer 6): the one place that reads flags and the environment and
exits. Commands are thin: they build ``app.Options``, call the composition root, and print.

Exit codes (docs/cli.md): 0 success; 1 a check or operation failed; 2 usage error;
3 bad input files (configuration, nodes.csv, credentials); 4 the machine lacks something
(interface, root, state directory); 5 a BMC failed; 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from racker import __version__
from racker.errors import ProblemsError, RackerError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("racker.cli")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info and log.isEnabledFor(logging.DEBUG):
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(verbose: int, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger("racker")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def fail(err: RackerError) -> NoReturn:
    click.secho(f"error: {err.message}", fg="red", err=True)
    if isinstance(err, ProblemsError) and len(err.problems) > 1:
        for problem in err.problems:
            click.echo(f"  - {problem}", err=True)
            if problem.hint:
                click.echo(f"      hint: {problem.hint}", err=True)
    elif err.hint:
        click.echo(f"  hint: {err.hint}", err=True)
    sys.exit(err.exit_code)


class RackerGroup(click.Group):
    """Turns racker's errors into one clear line plus a hint, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RackerError as err:
            fail(err)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except OSError as err:
            # Files, sockets and permissions: say which and what, never a traceback.
            log.debug("unexpected OS error", exc_info=True)
            where = f" ({err.filename})" if err.filename else ""
            fail(
                RackerError(
                    f"{err.strerror or err}{where}",
                    "check permissions (most commands need root); -vv shows details",
                )
            )
        except Exception as err:
            log.debug("internal error", exc_info=True)
            fail(
                RackerError(
                    f"internal error: {type(err).__name__}: {err}",
                    "this is a bug in racker; run again with -vv and report the output",
                )
            )


_RACK_OPTIONS = (
    ("--oem-dir", "RACKER_OEM_DIR", False, "Rack metadata directory. [default: /usr/share/oem]"),
    ("--state-dir", "RACKER_STATE_DIR", False, "State directory. [default: /var/lib/racker]"),
    ("--config", "RACKER_CONFIG", True, "racker.yaml. [default: /etc/racker/racker.yaml]"),
)


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Store a rack option in the root context; a flag given later (after the command name)
    wins over one given earlier, and any flag wins over the environment."""
    if value is None:
        return value
    root = ctx.find_root()
    root.ensure_object(dict)
    name = str(param.name)
    from_env = ctx.get_parameter_source(name) is click.core.ParameterSource.ENVIRONMENT
    if not from_env or name not in root.obj:
        root.obj[name] = value
    return value


def rack_options(func: F) -> F:
    """--oem-dir/--state-dir/--config, accepted before and after the command name."""
    for flag, envvar, is_file, text in reversed(_RACK_OPTIONS):
        func = click.option(
            flag,
            type=click.Path(path_type=Path, file_okay=is_file, dir_okay=not is_file),
            envvar=envvar,
            expose_value=False,
            callback=_remember,
            help=text,
        )(func)
    return func


def options_of(ctx: click.Context, interface: str | None = None) -> Any:
    from racker.rack.loading import Options

    obj = ctx.find_root().obj or {}
    return Options(
        oem_dir=obj.get("oem_dir"),
        state_dir=obj.get("state_dir"),
        config=obj.get("config"),
        interface=interface,
    )


@click.group(cls=RackerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@rack_options
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.version_option(__version__, "--version", prog_name="racker")
@click.pass_context
def cli(ctx: click.Context, verbose: int, log_format: str) -> None:
    """Provision a rack of bare-metal servers from its management node."""
    setup_logging(verbose, log_format)
    ctx.ensure_object(dict)


@cli.command()
@click.option("--check", is_flag=True, help="Also say whether an update or upgrade exists.")
@click.option("--index", "index_url", help="Release index URL. [default: updates.url]")
@rack_options
@click.pass_context
def version(ctx: click.Context, check: bool, index_url: str | None) -> None:
    """Print racker's version (--check: the installed one and newer releases; issue 9)."""
    if check:
        _version_check(ctx, index_url)
        return
    click.echo(f"racker {__version__}")


# --- factory: rack metadata (issue 2) -------------------------------------------------------


@cli.group()
def factory() -> None:
    """Prepare and validate the rack metadata in the OEM directory."""


@factory.command("check")
@click.option(
    "--offline", is_flag=True, help="Check the files only, not this machine's interfaces."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def factory_check_cmd(
    ctx: click.Context, offline: bool, as_json: bool, interface: str | None
) -> None:
    """Validate nodes.csv, the BMC credentials and the PXE interface; exit 1 when invalid."""
    from racker.rack.report import factory_check

    report = factory_check(options_of(ctx, interface), offline=offline)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for check in report.checks:
            mark = click.style("✓", fg="green") if check.ok else click.style("✗", fg="red")
            click.echo(f"{mark} {check.title}")
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


# --- serve: the boot stack (issues 3, 4, 5) ------------------------------------------------


@cli.command()
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def serve(ctx: click.Context, interface: str | None) -> None:
    """Run the boot stack (DHCP, TFTP, HTTP) on the PXE interface until SIGINT/SIGTERM."""
    from racker.app.run import run_event_loop, serve_until_signal
    from racker.app.stack import BootStack
    from racker.rack.loading import load_rack, open_store

    rack = load_rack(options_of(ctx, interface))
    with open_store(rack) as store:
        stack = BootStack(rack, store)

        def ready() -> None:
            names = ", ".join(type(s).__name__ for s in stack.servers)
            click.echo(
                f"racker serve: ready on {rack.interface.name} ({stack.server_ip}): {names}",
                err=True,
            )

        # SIGHUP re-reads racker.yaml, the OEM files and the profiles (issue 9).
        reread = lambda: load_rack(options_of(ctx, interface))  # noqa: E731
        run_event_loop(serve_until_signal(stack, ready, reread))


# --- render and assets commands (issue 5) ---------------------------------------------------


@cli.command("render")
@click.argument("mac")
@click.option("--installed/--not-installed", default=None, help="Override the stored state.")
@click.option("--role", help="Render as if bootstrap gave the node this role.")
@click.option("--platform", type=click.Choice(["efi", "pcbios"]), default="efi", show_default=True)
@rack_options
@click.pass_context
def render_cmd(
    ctx: click.Context, mac: str, installed: bool | None, role: str | None, platform: str
) -> None:
    """Show which group MAC matches and why, then its iPXE script and Ignition (no server)."""
    from racker.app.preview import explain_render
    from racker.model import parse_mac

    normalised = parse_mac(mac)
    if normalised is None:
        raise click.BadParameter(f"{mac!r} is not a MAC address", param_hint="MAC")
    text = explain_render(options_of(ctx), normalised, installed, role, platform)
    click.echo(text, nl=False)


@cli.group()
def assets() -> None:
    """The local asset mirror (Flatcar releases) that nodes install from."""


def _assets_dir(ctx: click.Context) -> tuple[Path, Any]:
    from racker.rack.loading import read_config, state_dir

    options = options_of(ctx)
    config = read_config(options)
    return config.http.assets_dir or state_dir(options, config) / "assets", config


@assets.command("fetch")
@click.argument("os_name", metavar="OS", type=click.Choice(["flatcar"]))
@click.option("--channel", type=click.Choice(["stable", "beta", "alpha", "lts"]))
@click.option("--version", "version_", default="current", show_default=True, help="X.Y.Z")
@click.option("--base-url", help="Release server board URL holding VERSION/ and current/.")
@click.option("--key", type=click.Path(path_type=Path, dir_okay=False), help="Signing key.")
@rack_options
@click.pass_context
def assets_fetch_cmd(
    ctx: click.Context,
    os_name: str,
    channel: str | None,
    version_: str,
    base_url: str | None,
    key: Path | None,
) -> None:
    """Download a Flatcar release, verify digests and signatures, publish it in the mirror."""
    from racker.mirror.flatcar import RichProgress, fetch_flatcar

    directory, config = _assets_dir(ctx)
    with RichProgress() as progress:
        result = fetch_flatcar(
            directory,
            channel=channel or config.install.channel,
            version=version_,
            base_url=base_url or config.install.release_url,
            key_file=key or config.install.signing_key,
            progress=progress,
        )
    what = "already current" if result.already_current else "fetched and verified"
    click.echo(f"Flatcar {result.version}: {what} in {result.directory}")


@assets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@rack_options
@click.pass_context
def assets_list_cmd(ctx: click.Context, as_json: bool) -> None:
    """List the Flatcar releases in the mirror and which channel each is current for."""
    from racker.mirror.flatcar import list_releases

    directory, _config = _assets_dir(ctx)
    releases = list_releases(directory)
    if as_json:
        rows = [
            {"version": r.version, "current_for": list(r.channels), "files": dict(r.files)}
            for r in releases
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not releases:
        click.echo(f"no Flatcar release in {directory} (racker assets fetch flatcar)")
    for r in releases:
        current = f"  current: {', '.join(r.channels)}" if r.channels else ""
        size = sum(s for _, s in r.files) / 1e6
        click.echo(f"flatcar {r.version}  {len(r.files)} files, {size:.1f} MB{current}")


# --- end of render and assets commands (issue 5) ---


# --- bootstrap and status (issue 7) ---------------------------------------------------------


def _ask_on_tty() -> Any:
    """--on-failure ask: the operator decides, in a thread so the other nodes keep going."""

    async def ask(name: str, rec: Any) -> str:
        import asyncio

        def prompt() -> str:
            click.echo(f"\n{name} failed after {rec.attempt} attempt(s): {rec.reason}", err=True)
            answer: str = click.prompt(
                "retry, exclude or cancel?",
                type=click.Choice(["retry", "exclude", "cancel"]),
                default="exclude",
                err=True,
            )
            return answer

        return await asyncio.to_thread(prompt)

    return ask


@cli.command("bootstrap")
@click.option(
    "--provision",
    type=click.Choice(["flatcar", "lokomotive"]),
    default="flatcar",
    show_default=True,
    help="flatcar: every node gets Flatcar; lokomotive: Flatcar plus Kubernetes roles.",
)
@click.option("--controllers", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--controller-type", help="Node type (nodes.csv) of the controllers.")
@click.option("--storage-type", help="Node type of the storage workers.")
@click.option("--storage-count", type=click.IntRange(0), default=0, show_default=True)
@click.option("--cluster-name", default="racker", show_default=True, help="Lokomotive cluster.")
@click.option("--nodes", "node_refs", multiple=True, help="Only these nodes (repeatable).")
@click.option("--exclude", "exclude_refs", multiple=True, help="Not these nodes (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan and exit; nothing is powered.")
@click.option("--reprovision", is_flag=True, help="Install ready nodes again.")
@click.option("--parallel", type=click.IntRange(0), default=0, help="Nodes in flight (0: all).")
@click.option(
    "--stagger",
    type=click.FloatRange(0),
    default=2.0,
    show_default=True,
    help="Seconds between two power-ons.",
)
@click.option("--retries", type=click.IntRange(0), default=2, show_default=True)
@click.option(
    "--on-failure",
    type=click.Choice(["ask", "retry", "exclude", "cancel"]),
    default="ask",
    show_default=True,
    help="When a node's retries are used up (ask prompts only on a TTY, else excludes).",
)
@click.option("--efi/--no-efi", default=False, help="Ask BMCs for UEFI boot.")
@click.option("--timeout-scale", type=click.FloatRange(min=0.001), default=1.0, hidden=True)
@click.option("--driver", "driver_name", type=click.Choice(["ipmi", "fake"]), help="Power driver.")
@click.option("--json", "as_json", is_flag=True, help="Print an event stream (JSON lines).")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def bootstrap_cmd(
    ctx: click.Context,
    provision: str,
    controllers: int,
    controller_type: str | None,
    storage_type: str | None,
    storage_count: int,
    cluster_name: str,
    node_refs: tuple[str, ...],
    exclude_refs: tuple[str, ...],
    dry_run: bool,
    reprovision: bool,
    parallel: int,
    stagger: float,
    retries: int,
    on_failure: str,
    efi: bool,
    timeout_scale: float,
    driver_name: str | None,
    as_json: bool,
    interface: str | None,
) -> None:
    """PXE boot and install every node of the rack (or --nodes), and again when asked.

    Exit 0 only when every selected node is ready. Safe to run again after an interruption:
    each node continues from where it was, ready nodes are skipped.
    """
    from racker.app.provision import apply_lokomotive, run_bootstrap
    from racker.app.run import run_event_loop
    from racker.bootstrap.machine import Deadlines
    from racker.bootstrap.orchestrator import RunOptions
    from racker.bootstrap.plan import PlanRequest, Provision, make_plan
    from racker.bootstrap.sharing import RunLock
    from racker.power.targets import select_nodes
    from racker.rack.loading import load_rack, open_store

    rack = load_rack(options_of(ctx, interface))
    inventory = rack.oem.inventory
    # --nodes a,b and --nodes a --nodes b both work
    refs = [r for v in node_refs for r in v.split(",") if r.strip()]
    not_refs = [r for v in exclude_refs for r in v.split(",") if r.strip()]
    chosen = select_nodes(inventory, refs, all_nodes=not refs)
    excluded = select_nodes(inventory, not_refs) if not_refs else []
    request = PlanRequest(
        Provision(provision),
        controllers,
        controller_type,
        storage_type,
        storage_count,
        reprovision,
    )
    plan = make_plan([n for n in chosen if n not in excluded], request)
    if dry_run:
        for line in plan.describe():
            click.echo(line)
        return
    tty = sys.stdout.isatty()
    mode = "json" if as_json else "live" if tty else "plain"
    options = RunOptions(
        parallel=parallel,
        stagger=stagger,
        retries=retries,
        on_failure=on_failure,  # type: ignore[arg-type]
        reprovision=reprovision,
        efi=efi,
        deadlines=Deadlines().scaled(timeout_scale),
    )
    ask = _ask_on_tty() if on_failure == "ask" and sys.stdin.isatty() and tty else None
    with RunLock(rack.state_dir), open_store(rack) as store:
        if mode != "json":
            for line in plan.describe():
                click.echo(line)
        result = run_event_loop(
            run_bootstrap(
                rack,
                store,
                plan,
                options,
                progress_mode=mode,
                out=sys.stdout,
                driver_name=driver_name,
                ask=ask,
            )
        )
    if not result.ok:
        sys.exit(1)
    if plan.provision is Provision.LOKOMOTIVE:
        path, command, code = apply_lokomotive(rack, plan, cluster_name)
        click.echo(f"wrote {path}")
        if code is None:
            click.echo(f"lokoctl is not on PATH; to install Kubernetes run: {' '.join(command)}")
        elif code != 0:
            click.secho(f"'{' '.join(command)}' failed with exit code {code}", fg="red", err=True)
            sys.exit(1)


@cli.command("status")
@click.option("--full", is_flag=True, help="Also MACs, BMC address, boot device, attempt, reason.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@click.option("--driver", "driver_name", type=click.Choice(["ipmi", "fake"]), help="Power driver.")
@click.option("--interface", help="The PXE interface (default: found from the OEM files).")
@rack_options
@click.pass_context
def status_cmd(
    ctx: click.Context, full: bool, as_json: bool, driver_name: str | None, interface: str | None
) -> None:
    """One row per node: type, role, addresses, BMC, power, provisioning state, last event."""
    import asyncio

    from rich.console import Console

    from racker.app.provision import rack_status
    from racker.bootstrap.status import status_table
    from racker.rack.loading import load_rack, open_store

    rack = load_rack(options_of(ctx, interface))
    with open_store(rack) as store:
        rows = asyncio.run(rack_status(rack, store, full or as_json, driver_name))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    # Piped (logs, `racker demo`), rich would squeeze the table into 80 columns; give it room.
    width = None if sys.stdout.isatty() else 200
    Console(soft_wrap=True, width=width).print(status_table(rows, full))


# --- end of bootstrap and status (issue 7) ---


# --- power and BMC commands (issue 6) -------------------------------------------------------
# Thin click wiring only: NODE resolution lives in racker.power.targets, the concurrent
# fan-out in racker.power.actions / racker.power.check, drivers in racker.power.drivers.

_DRIVER_OPTION = click.option(
    "--driver",
    type=click.Choice(["ipmi", "fake"]),
    help="Power driver. [default: bmc.driver in racker.yaml, else ipmi]",
)


def _bmc_targets(
    ctx: click.Context, refs: tuple[str, ...], all_nodes: bool, include_management: bool = False
) -> tuple[Any, Path, list[Any]]:
    """Config, state directory and (node, target-or-reason) pairs for NODE arguments/--all."""
    from racker.app.provision import bmc_entries

    return bmc_entries(options_of(ctx), refs, all_nodes, include_management)


def _power_driver(config: Any, state: Path, name: str | None) -> Any:
    from racker.app.provision import power_driver

    return power_driver(config, state, name)


def _run_bmc(driver: Any, work: Any) -> Any:
    import asyncio

    async def run() -> Any:
        try:
            return await work
        finally:
            await driver.close()

    return asyncio.run(run())


def _print_action_rows(rows: list[Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        for r in rows:
            where = f" ({r.address})" if r.address else ""
            if r.ok:
                click.echo(f"{click.style('✓', fg='green')} {r.node}{where}: {r.result}")
            else:
                click.echo(f"{click.style('✗', fg='red')} {r.node}{where}: {r.error}")
                if r.hint:
                    click.echo(f"    hint: {r.hint}")
    if not all(r.ok for r in rows):
        sys.exit(5)


@cli.command("power")
@click.argument("args", nargs=-1, required=True, metavar="NODE...|--all ACTION")
@click.option("--all", "all_nodes", is_flag=True, help="Every node except the management node.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per node.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def power_cmd(
    ctx: click.Context, args: tuple[str, ...], all_nodes: bool, as_json: bool, driver: str | None
) -> None:
    """Show or change nodes' power through their BMCs, all at once.

    ACTION is status, on, off, cycle, reset or soft (ACPI shutdown). NODE is a primary MAC,
    BMC MAC, hostname or row number of nodes.csv. Exit 5 if any BMC failed."""
    from racker.power.actions import POWER_COMMANDS, apply_to_all, power_operation

    *refs, command = args
    if command not in POWER_COMMANDS:
        raise click.BadParameter(
            f"{command!r} is not one of {', '.join(POWER_COMMANDS)} (it comes last)",
            param_hint="ACTION",
        )
    config, state, entries = _bmc_targets(ctx, tuple(refs), all_nodes)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, apply_to_all(power_driver, entries, power_operation(command)))
    _print_action_rows(rows, as_json)


@cli.command("bootdev")
@click.argument("args", nargs=-1, required=True, metavar="NODE...|--all PXE|DISK|BIOS")
@click.option("--all", "all_nodes", is_flag=True, help="Every node except the management node.")
@click.option("--persistent", is_flag=True, help="For every boot, not only the next one.")
@click.option("--efi", is_flag=True, help="Ask for a UEFI boot (the EFI boot-flag bit).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per node.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def bootdev_cmd(
    ctx: click.Context,
    args: tuple[str, ...],
    all_nodes: bool,
    persistent: bool,
    efi: bool,
    as_json: bool,
    driver: str | None,
) -> None:
    """Set the device nodes boot from next (and keep it past the BMC's 60 s timer)."""
    from racker.power.actions import apply_to_all, bootdev_operation
    from racker.power.base import BootDevice, BootSetting

    *refs, device = args
    if device not in ("pxe", "disk", "bios"):
        raise click.BadParameter(
            f"{device!r} is not one of pxe, disk, bios (it comes last)", param_hint="DEVICE"
        )
    setting = BootSetting(BootDevice(device), persistent, efi)
    config, state, entries = _bmc_targets(ctx, tuple(refs), all_nodes)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, apply_to_all(power_driver, entries, bootdev_operation(setting)))
    _print_action_rows(rows, as_json)


@cli.command("console")
@click.argument("node")
@rack_options
@click.pass_context
def console_cmd(ctx: click.Context, node: str) -> None:
    """Attach to NODE's serial console over IPMI serial-over-LAN (~. leaves)."""
    from racker.errors import BmcError
    from racker.power.console import ESCAPE_HELP, run_console

    _config, _state, [(found, target)] = _bmc_targets(ctx, (node,), False)
    if isinstance(target, BmcError):
        raise target
    click.echo(f"{found.hostname}: serial console via {target.address} ({ESCAPE_HELP})", err=True)
    sys.exit(run_console(target))


@cli.group()
def bmc() -> None:
    """Look at the rack's BMCs."""


@bmc.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_DRIVER_OPTION
@rack_options
@click.pass_context
def bmc_check_cmd(ctx: click.Context, as_json: bool, driver: str | None) -> None:
    """Ask every BMC at once: reachable? credentials accepted? power? boot device?

    Exit 1 if any BMC is not fine."""
    from racker.power.check import check_bmcs

    config, state, entries = _bmc_targets(ctx, (), True, include_management=True)
    power_driver = _power_driver(config, state, driver)
    rows = _run_bmc(power_driver, check_bmcs(power_driver, entries))
    if as_json:
        click.echo(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        def mark(value: bool | None) -> str:
            return "[green]✓[/]" if value else "[red]✗[/]" if value is False else "[dim]-[/]"

        table = Table(title=f"BMCs ({sum(r.ok for r in rows)}/{len(rows)} fine)")
        for column in ("Node", "Row", "BMC", "Reachable", "Login", "Power", "Boot", "Firmware"):
            table.add_column(column, no_wrap=column != "Firmware")
        table.add_column("Problem", overflow="fold")
        for r in rows:
            problem = r.error + (f"\nhint: {r.hint}" if r.hint else "")
            table.add_row(
                r.node, str(r.row), r.address or "-", mark(r.reachable), mark(r.credentials),
                r.power or "-", r.boot or "-", r.firmware or "-", problem,
            )  # fmt: skip
        Console(soft_wrap=False).print(table)
    sys.exit(0 if all(r.ok for r in rows) else 1)


# --- end of power and BMC commands (issue 6) ---


# --- sim and demo (issue 8) -----------------------------------------------------------------
# Thin wiring only: the simulator lives in racker.sim (rack: up/down/status, demo: racker demo).

_SIM_NAME = click.option(
    "--name", default="rack", show_default=True, help="Sim name (namespaces rsim-NAME-m/-r)."
)


@cli.group()
def sim() -> None:
    """A simulated rack on this machine: QEMU VMs with real firmware behind ipmi_sim BMCs."""


@sim.command("up")
@click.option("--nodes", "count", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option(
    "--firmware", type=click.Choice(["bios", "uefi", "mixed"]), default="mixed", show_default=True
)
@click.option("--subnet", default="10.99.0.0/24", show_default=True, help="The rack segment.")
@_SIM_NAME
def sim_up_cmd(count: int, firmware: str, subnet: str, name: str) -> None:
    """Create the sim (needs root); racker then runs inside its management namespace."""
    from racker.sim.rack import sim_up
    from racker.sim.spec import SimSpecError, plan_sim

    try:
        spec = plan_sim(name, count, firmware, subnet)
    except (SimSpecError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    sim_up(spec)
    click.echo(f"sim {name} up: {count} node(s) in {spec.rack_ns}, management in {spec.mgmt_ns}")
    for node in spec.nodes:
        click.echo(f"  {node.hostname}  {node.mac}  {node.firmware:4}  BMC {node.bmc_host}:623")
    run = f"ip netns exec {spec.mgmt_ns} racker --config {spec.config_path}"
    click.echo(f"next: {run} bootstrap      (or serve, status, power ...)")
    click.echo(f"done: racker sim down --name {name}")


@sim.command("down")
@_SIM_NAME
def sim_down_cmd(name: str) -> None:
    """Stop every VM and BMC of the sim and remove its namespaces, taps and files."""
    from racker.sim.rack import sim_down

    removed = sim_down(name)
    click.echo(f"sim {name} removed: {'; '.join(removed)}" if removed else f"no sim {name}")


@sim.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
@_SIM_NAME
def sim_status_cmd(as_json: bool, name: str) -> None:
    """One row per simulated node: BMC, power, boot device, disk, last console line."""
    from racker.sim.rack import sim_status

    spec, rows = sim_status(name)
    data = [
        {
            "node": r.node.name,
            "hostname": r.node.hostname,
            "mac": r.node.mac,
            "firmware": r.node.firmware,
            "bmc": f"{r.node.bmc_host}:623",
            "bmc_up": r.bmc_up,
            "power": "on" if r.power else "off",
            "boot": r.boot,
            "installed": r.installed,
            "console": r.last,
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"sim {name}: {spec.config_path}")
    for d in data:
        bmc = d["bmc"] if d["bmc_up"] else f"{d['bmc']} (DOWN)"
        disk = "installed" if d["installed"] else "empty"
        click.echo(f"  {d['node']:6} {d['firmware']:4} {bmc:18} power {d['power']:3} ", nl=False)
        click.echo(f"boot {d['boot']:7} disk {disk:9} {d['console']}")


@cli.command("demo")
@click.option("--nodes", "count", type=click.IntRange(1, 8), default=3, show_default=True)
@click.option(
    "--firmware", type=click.Choice(["bios", "uefi", "mixed"]), default="mixed", show_default=True
)
@click.option("--keep", is_flag=True, help="Leave the sim up afterwards (racker sim down).")
def demo_cmd(count: int, firmware: str, keep: bool) -> None:
    """Simulate a rack, provision it with racker bootstrap, show racker status, tear down."""
    from racker.sim.demo import run_demo

    sys.exit(run_demo(click.echo, count, firmware, keep=keep))


# --- end of sim and demo (issue 8) ---


# --- install and updates (issue 9) ----------------------------------------------------------
# Thin wiring only: the steps live in racker.release (layout, update, index, systemd).

_LAYOUT_OPTIONS = (
    click.option(
        "--root",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_ROOT",
        default="/",
        show_default=True,
        help="Install into this tree (the host's root seen from a container; tests).",
    ),
    click.option(
        "--prefix",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_PREFIX",
        default="/opt/racker",
        show_default=True,
        help="Where releases live, inside the root.",
    ),
    click.option(
        "--bin-dir",
        type=click.Path(path_type=Path, file_okay=False),
        envvar="RACKER_BIN_DIR",
        help="Where the racker command link goes. [default: /opt/bin on Flatcar, else "
        "/usr/local/bin]",
    ),
)
_INDEX_OPTION = click.option(
    "--index", "index_url", help="Release index URL. [default: updates.url]"
)


def _layout_options(func: F) -> F:
    for option in reversed(_LAYOUT_OPTIONS):
        func = option(func)
    return func


def _installer(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> Any:
    from racker.rack.loading import read_config, state_dir
    from racker.release.layout import Layout, default_bin_dir
    from racker.release.systemd import Systemctl
    from racker.release.update import Installer

    options = options_of(ctx)
    config = read_config(options)
    layout = Layout(root, prefix, bin_dir or default_bin_dir(root))
    return Installer(
        layout,
        Systemctl(root),
        click.echo,
        signing_key=config.updates.signing_key,
        tools=config.tools,
        state_dir=root / state_dir(options, config).relative_to("/"),
    ), config


def _release_index(config: Any, index_url: str | None) -> Any:
    from racker.release.update import load_index

    url = index_url or config.updates.url
    if not url:
        raise RackerError("no release index configured", "set updates.url in racker.yaml")
    return load_index(url)


def _version_check(ctx: click.Context, index_url: str | None) -> None:
    """`racker version --check`: the installed release and what update/upgrade would get."""
    import os

    from racker.release.layout import installed

    root = Path(os.environ.get("RACKER_ROOT", "/"))
    prefix = Path(os.environ.get("RACKER_PREFIX", "/opt/racker"))
    installer, config = _installer(ctx, root, prefix, None)
    info = installed(installer.layout)
    have = info.version if info is not None else __version__
    where = f"installed in {installer.layout.home}" if info else "running, not installed"
    click.echo(f"racker {have} ({where})")
    from racker.release.index import check_versions

    found = check_versions(_release_index(config, index_url), have, installer.machine)
    if found.update:
        click.echo(f"update available: {found.update.version} (racker update)")
    if found.upgrade:
        click.echo(
            f"upgrade available: {found.upgrade.version} (racker upgrade; may be incompatible)"
        )
    if not found.update and not found.upgrade:
        click.echo("no newer release")


@cli.command("install")
@_layout_options
@click.option("--bundle", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Install from this racker-*.tar.gz instead of the running bundle.")  # fmt: skip
@click.option("--start", is_flag=True, help="Also start the service (after factory check).")
@rack_options
@click.pass_context
def install_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, bundle: Path | None,
    start: bool,
) -> None:  # fmt: skip
    """Install this bundle under the prefix: releases/VERSION, current, the racker command
    on PATH and the systemd unit (enabled when systemd runs)."""
    from racker.release.layout import locked

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        if bundle is not None:
            installer.install_archive(bundle, start)
        elif getattr(sys, "frozen", False):
            installer.install_folder(Path(sys.executable).parent, start)
        else:
            raise RackerError(
                "this racker is not a bundle (it runs from a Python environment)",
                "run 'racker install' from the unpacked bundle, or pass --bundle FILE.tar.gz",
            )


@cli.command("uninstall")
@_layout_options
@rack_options
@click.pass_context
def uninstall_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Remove racker (releases, command, unit); never the state directory or OEM files."""
    installer, _config = _installer(ctx, root, prefix, bin_dir)
    for path in installer.uninstall():
        click.echo(f"removed {path}")
    click.echo("kept the state directory and the OEM files")


@cli.command("update")
@_layout_options
@_INDEX_OPTION
@rack_options
@click.pass_context
def update_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, index_url: str | None
) -> None:
    """Install the newest compatible release (same MAJOR.MINOR) and restart the service."""
    from racker.release.layout import locked

    installer, config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        found = installer.check(_release_index(config, index_url))
        if found.update is None:
            installer.install_tools()
            click.echo(f"racker {found.installed} is the newest compatible release")
        else:
            installer.apply(found.update)
        if found.upgrade is not None:
            click.echo(f"an incompatible upgrade exists: {found.upgrade.version} (racker upgrade)")


@cli.command("upgrade")
@_layout_options
@_INDEX_OPTION
@click.option("--yes", is_flag=True, help="Do not ask before upgrading.")
@rack_options
@click.pass_context
def upgrade_cmd(
    ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None, index_url: str | None,
    yes: bool,
) -> None:  # fmt: skip
    """Install the newest release, which may be incompatible, after showing what changes."""
    from racker.release.index import describe_upgrade
    from racker.release.layout import locked

    installer, config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        current = installer.current()
        found = installer.check(_release_index(config, index_url))
        target = found.upgrade or found.update
        if target is None:
            installer.install_tools()
            click.echo(f"racker {current.version} is the newest release")
            return
        for line in describe_upgrade(current.version, current.state_schema, target):
            click.echo(line)
        if not yes:
            if not sys.stdin.isatty():
                raise RackerError("not on a terminal: cannot ask", "pass --yes to upgrade")
            click.confirm("upgrade?", abort=True)
        installer.apply(target)


@cli.command("rollback")
@_layout_options
@rack_options
@click.pass_context
def rollback_cmd(ctx: click.Context, root: Path, prefix: Path, bin_dir: Path | None) -> None:
    """Make the release that the last update/upgrade replaced current again."""
    from racker.release.layout import locked

    installer, _config = _installer(ctx, root, prefix, bin_dir)
    with locked(installer.layout):
        installer.rollback()


# --- end of install and updates (issue 9) ---


def main() -> None:
    start = time.monotonic()
    try:
        cli.main(prog_name="racker")
    finally:
        log.debug("done in %.3f s", time.monotonic() - start)
