"""Running the boot stack: the event loop, signals, systemd readiness, SIGHUP reload."""

from __future__ import annotations

import asyncio
import logging
import resource
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from racker.app.reload import reload_from_files
from racker.app.stack import BootStack
from racker.rack.loading import Rack

log = logging.getLogger("racker.serve")
T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """Run ``main`` to the end on asyncio's own loop, or on uvloop if asked and installed.

    The one place racker chooses its event loop (``racker serve``, ``racker bootstrap``).
    ``loop`` (None: ``"asyncio"``; the CLI passes ``$RACKER_EVENT_LOOP``) ``"uvloop"`` opts in:
    the boot stack works on it (tests/integration/web/test_serve_event_loop.py) and answers
    /ipxe faster, but aiohttp cannot ``sendfile`` on uvloop's transports, so every asset byte
    is read and written through Python: several times the server CPU per MiB (figures in
    docs/benchmarks.md).
    """
    raise_open_file_limit()
    choice = loop or "asyncio"
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    name = "asyncio"
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            name = "asyncio (uvloop is not installed)"
        else:
            factory, name = uvloop.new_event_loop, "uvloop"
    log.info("event loop: %s", name)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def raise_open_file_limit() -> int:
    """Raise the soft limit on open descriptors to the hard one (systemd's default soft limit,
    1024, is what a boot storm and a flood of TFTP requests share with HTTP, the store and
    the BMC sessions); returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, exc)
    log.info("open-file limit: %d", soft)
    return soft


async def serve_until_signal(
    stack: BootStack,
    ready: Callable[[], None] | None = None,
    load: Callable[[], Rack] | None = None,
    notify_socket: str | None = None,
) -> None:
    """Run the boot stack until SIGINT or SIGTERM, then close it cleanly (leases flushed).

    Once every server is bound, tell systemd on ``notify_socket`` ($NOTIFY_SOCKET: sd_notify
    READY=1; None outside a Type=notify unit); on SIGHUP, re-read the files through ``load``
    and apply them (``reload_from_files``)."""
    from racker.release.systemd import notify

    systemd = {"NOTIFY_SOCKET": notify_socket or ""}
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if load is not None:
        loop.add_signal_handler(signal.SIGHUP, reload_from_files, stack, load)
    started = time.monotonic()
    await stack.start()
    notify("READY=1", systemd)
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        log.info("stopping after %.0f s", time.monotonic() - started)
        notify("STOPPING=1", systemd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await stack.close()
