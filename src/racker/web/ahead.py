"""iPXE scripts rendered ahead of the request, for every node of the inventory.

A rack powering on asks for ~all its scripts within a few milliseconds; rendered on request
each costs a render (jinja2) and two HMACs, and they queue behind each other. Rendered ahead,
each answer is a dict lookup (``BootService.cached_ipxe``). Only when the catalog's iPXE
answers depend on nothing of the request but the MAC (``Catalog.ipxe_per_node``) and the
server's URL is fixed. Tokens in the scripts change every ``expiry_step`` seconds, so the
scripts are rendered again just after each step, a slice of nodes at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from types import MappingProxyType

from racker.errors import RackerError
from racker.profiles import NodeFacts
from racker.web.handlers import BootService

log = logging.getLogger("racker.http")

# Nodes rendered between two turns of the event loop: small enough that a refresh never holds
# DHCP, TFTP and HTTP up for long, whatever the size of the inventory (a rack rendered in one
# go would hold them for as long as a whole burst of requests takes).
CHUNK = 50


def render_nodes(svc: BootService, macs: list[str]) -> int:
    """Render the iPXE scripts of these nodes into ``svc.ipxe_ahead``; return how many were
    (re)rendered. Entries still current are kept. Nodes that match no group are skipped:
    their request renders and gets the 404 with the reason."""
    if svc.catalog.ipxe_reads_request is not None or not svc.server_url:
        return 0
    base, expires, done = svc.server_url.rstrip("/"), svc.token_expiry(), 0
    for mac in macs:
        key = (mac, base)
        facts = NodeFacts(mac=mac, query=MappingProxyType({"mac": mac}))
        entry = svc.ipxe_ahead.get(key)
        if (
            entry is not None
            and entry.expires == expires
            and svc.context_for(facts) == entry.node_context
        ):
            continue
        try:
            svc.ipxe_ahead[key] = svc.render_ipxe_entry(base, facts, mac)
        except RackerError:  # NoMatch or a template error: the request will say why
            svc.ipxe_ahead.pop(key, None)
            continue
        done += 1
    return done


class RenderAhead:
    """Keeps ``inventory()``'s scripts rendered: at start, after each token step, on demand."""

    def __init__(self, svc: BootService, inventory: Callable[[], list[str]]) -> None:
        self._svc = svc
        self._inventory = inventory
        self._again = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def render(self) -> int:
        """Everything at once (at start, before the server answers anyone); says so in the
        log, or why the catalog's scripts are rendered on each request instead."""
        start = time.perf_counter()
        done = sum(self._chunks())
        why = self._svc.catalog.ipxe_reads_request
        if why is not None:
            log.info("HTTP: iPXE scripts are rendered on each request: %s", why)
        else:
            took = (time.perf_counter() - start) * 1e3
            log.info("HTTP: iPXE scripts of %d nodes rendered ahead in %.0f ms", done, took)
        return done

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep())

    def again(self) -> None:
        """Render now (after a reload changed the catalog or the inventory)."""
        self._again.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _chunks(self) -> Iterator[int]:
        svc, start = self._svc, time.perf_counter()
        macs = self._inventory()
        done = 0
        for at in range(0, len(macs), CHUNK):
            count = render_nodes(svc, macs[at : at + CHUNK])
            done += count
            yield count
        listed = set(macs)
        for key in [key for key in svc.ipxe_ahead if key[0] not in listed]:
            del svc.ipxe_ahead[key]  # a node removed from the inventory (reload)
        if done:
            took = (time.perf_counter() - start) * 1e3
            log.debug("rendered %d iPXE scripts ahead in %.1f ms", done, took)

    async def _keep(self) -> None:
        svc = self._svc
        while True:
            step = max(1, svc.expiry_step)
            delay = step - svc.clock() % step + 0.01  # just after the next step (wall clock)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._again.wait(), delay)
            self._again.clear()
            try:
                for _ in self._chunks():
                    await asyncio.sleep(0)  # let the loop serve others between two slices
            except Exception:  # a bug here must not stop the refreshing for good
                log.exception("rendering iPXE scripts ahead failed")
