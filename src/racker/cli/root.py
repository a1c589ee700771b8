"""The root ``racker`` command group and what every command shares: the rack options
(``--oem-dir``, ``--state-dir``, ``--config``), logging set-up, and turning racker's errors into
one clear line, a hint and an exit code.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from racker import __version__
from racker.errors import ProblemsError, RackerError

if TYPE_CHECKING:
    from racker.rack.loading import Options

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


def options_of(ctx: click.Context, interface: str | None = None) -> Options:
    from racker.rack.loading import Options

    obj = ctx.find_root().obj or {}
    return Options(
        oem_dir=obj.get("oem_dir"),
        state_dir=obj.get("state_dir"),
        config=obj.get("config"),
        interface=interface,
    )


def event_loop_choice() -> str:
    """``$RACKER_EVENT_LOOP``: ``uvloop`` opts in to uvloop (``racker.app.run``)."""
    return os.environ.get("RACKER_EVENT_LOOP", "asyncio")


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
