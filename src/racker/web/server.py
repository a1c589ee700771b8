"""The boot HTTP server: route table, request observation, and the asyncio lifecycle.

``make_app`` builds the ``web.Application`` (what aiohttp's test client runs);
``BootHttpServer`` binds it to the PXE interface address. Every request, whatever its outcome,
is counted, logged (path only: the query holds tokens) and published as an ``HttpEvent``.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from racker.errors import EnvironmentProblem
from racker.events import HttpEvent, Publish, discard
from racker.model import parse_mac
from racker.tftp.files import FileRoots
from racker.web.ahead import RenderAhead
from racker.web.fastpath import FastPathServer
from racker.web.handlers import (
    AddressOf,
    BootService,
    ContextFor,
    NodeStates,
    RenderCatalog,
    _no_address,
    _no_nodes,
)
from racker.web.loaders import LoaderFiles
from racker.web.metrics import HttpMetrics
from racker.web.page.feed import RackFeed
from racker.web.page.routes import add_page_routes
from racker.web.redact import server_logger

log = logging.getLogger("racker.http")

SERVICE = web.AppKey("racker_boot_service", BootService)
# Listen backlog: a rack powering on opens hundreds of connections at once. aiohttp's default
# (128) overflowed under 200 concurrent clients: Linux then drops the handshake's last ACK and
# the client resends only after TCP's minimum retransmission timeout, which dwarfs the answer
# itself.
_BACKLOG = 1024
# Idle keep-alive connections are closed after this long (nginx's default; aiohttp's is an
# hour). iPXE reuses its connection within seconds: /boot.ipxe, /ipxe, kernel, initrd.
KEEPALIVE_TIMEOUT = 75.0
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def make_app(
    catalog: RenderCatalog,
    context_for: ContextFor,
    *,
    key: bytes,
    assets_dir: Path,
    publish: Publish = discard,
    node_states: NodeStates = _no_nodes,
    address_of: AddressOf = _no_address,
    bind_to_lease: bool = False,
    server_url: str | None = None,
    registry: CollectorRegistry | None = None,
    token_ttl: int = 86400,
    clock: Callable[[], float] = time.time,
    loaders: FileRoots | None = None,
    loader_policy: Callable[[str], bool] | None = None,
    page: RackFeed | None = None,
) -> web.Application:
    svc = BootService(
        catalog=catalog,
        context_for=context_for,
        key=key,
        assets_dir=assets_dir,
        publish=publish,
        node_states=node_states,
        address_of=address_of,
        bind_to_lease=bind_to_lease,
        server_url=server_url,
        token_ttl=token_ttl,
        clock=clock,
        metrics=HttpMetrics(registry),
    )
    app = web.Application(middlewares=[_observe])
    app[SERVICE] = svc
    app.router.add_routes(
        [
            web.get("/boot.ipxe", svc.boot_ipxe),
            web.get("/ipxe", svc.ipxe),
            web.get("/ignition", svc.ignition),
            web.get("/metadata", svc.metadata),
            web.get("/assets/{path:.*}", svc.assets),  # also answers HEAD
            web.post("/api/v1/events", svc.events),
            web.get("/api/v1/nodes", svc.nodes),
            web.get("/metrics", svc.metrics_text),
            web.get("/healthz", svc.healthz),
        ]
    )
    if page is not None:  # the rack page at / (racker serve)
        add_page_routes(app, page, svc.metrics.registry)
    if loaders is not None:  # UEFI HTTP Boot's first stage; last, so it shadows nothing above
        app.router.add_get("/{name:.+}", LoaderFiles(loaders, loader_policy).serve)
    return app


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Send the response here (not after the middleware) so its size and time are known."""
    start = time.perf_counter()
    status, sent = 500, 0
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        await response.prepare(request)  # FileResponse sends the file (sendfile) right here
        await response.write_eof()
        status, sent = response.status, _body_bytes(request, response)
        return response
    except web.HTTPException as exc:  # router's 404/405, client_max_size's 413
        status, sent = exc.status, len(exc.text or "")
        raise
    except (ConnectionError, asyncio.CancelledError):  # the client went away mid-response
        status = response.status if response is not None and response.prepared else 499
        raise
    finally:
        _record(request, status, sent, time.perf_counter() - start)


def _body_bytes(request: web.Request, response: web.StreamResponse) -> int:
    # A FileResponse goes out through sendfile(2), which the writer's counters never see; the
    # Content-Length of what was sent (the range, for a 206) is the body size.
    if request.method == "HEAD" or response.status in (204, 304):
        return 0
    return response.content_length or 0


def _record(request: web.Request, status: int, sent: int, duration: float) -> None:
    svc = request.app[SERVICE]
    route = _route_name(request)
    path = request.rel_url.raw_path  # percent-encoded, without the query (tokens live there)
    mac = parse_mac(request.query.get("mac", ""))
    record(svc, request.method, route, path, mac, request.remote or "", status, sent, duration)


def record(
    svc: BootService,
    method: str,
    route: str,
    path: str,
    mac: str | None,
    peer: str,
    status: int,
    sent: int,
    duration: float,
) -> None:
    """Count, log and publish one answered request (aiohttp's or the fast path's)."""
    svc.metrics.observe_request(method, route, status, sent)
    if log.isEnabledFor(logging.INFO):
        log.info("%s %s %s %d %d %.1fms", peer, method, path, status, sent, duration * 1e3)
    try:
        svc.publish(http_event(mac, svc.clock(), peer, method, path, status, sent, duration))
    except Exception:  # a broken subscriber must not break serving
        log.exception("publishing an HTTP event failed")


_new = object.__new__


def http_event(
    mac: str | None,
    ts: float,
    peer: str,
    method: str,
    path: str,
    status: int,
    sent: int,
    duration: float,
) -> HttpEvent:
    """An ``HttpEvent`` (kind "request"), equal to one built by its constructor.

    One per request: the frozen dataclass' generated ``__init__`` assigns its 9 fields through
    ``object.__setattr__``, one call each; filling the instance dict directly is one call, a
    fraction of the cost. A unit test keeps the field set in step with ``racker.events``.
    """
    event: HttpEvent = _new(HttpEvent)
    event.__dict__.update(
        kind="request",
        mac=mac,
        ts=ts,
        peer=peer,
        method=method,
        path=path,
        status=status,
        bytes=sent,
        duration=duration,
    )
    return event


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


class BootHttpServer:
    """``make_app`` bound to ``host:port`` (or a ready socket), with start/close."""

    def __init__(
        self,
        host: str,
        port: int,
        catalog: RenderCatalog,
        context_for: ContextFor,
        *,
        sock: socket.socket | None = None,
        inventory: Callable[[], list[str]] | None = None,
        fast_path: bool = True,
        **app_options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self._sock = sock
        # The MACs whose iPXE scripts are rendered before they ask (``racker serve``: every
        # inventory node's primary MAC), kept current by ``racker.web.ahead``.
        self._inventory = inventory
        self._ahead: RenderAhead | None = None
        if "server_url" not in app_options and port:
            app_options["server_url"] = f"http://{host}:{port}"
        self.app = make_app(catalog, context_for, **app_options)
        self._runner: web.AppRunner | None = None
        self._acceptor: _Acceptor | None = None
        # /boot.ipxe and /ipxe answered without aiohttp's per-request work (fastpath.py);
        # False: aiohttp answers everything (the reference the fast path is tested against).
        self._fast_path = fast_path
        self.fast: FastPathServer | None = None

    @property
    def metrics(self) -> HttpMetrics:
        return self.app[SERVICE].metrics

    async def start(self) -> None:
        # access_log=None: aiohttp's access log prints the query string, and tokens live there.
        # ``_observe`` logs paths only; aiohttp's own error lines go through a redacting logger.
        runner = web.AppRunner(
            self.app,
            access_log=None,
            handle_signals=False,
            logger=server_logger(),
            keepalive_timeout=KEEPALIVE_TIMEOUT,
        )
        await runner.setup()
        try:
            sock = self._sock if self._sock is not None else _listen(self.host, self.port)
            sock.listen(_BACKLOG)
        except OSError as exc:
            await runner.cleanup()
            raise EnvironmentProblem(
                f"the HTTP server cannot listen on {self.host}:{self.port}: {exc.strerror}",
                "is another server using the port? change http.port in racker.yaml",
            ) from None
        assert runner.server is not None  # set by setup()
        factory: Callable[[], asyncio.Protocol] = runner.server
        if self._fast_path:
            svc = self.app[SERVICE]
            self.fast = FastPathServer(
                svc, runner.server, functools.partial(record, svc), KEEPALIVE_TIMEOUT
            )
            factory = self.fast
        self._acceptor = _Acceptor(sock, factory)
        self._runner = runner
        bound = sock.getsockname()
        self.port = int(bound[1])
        if self._inventory is not None:
            self._ahead = RenderAhead(self.app[SERVICE], self._inventory)
            self._ahead.render()  # before gc.freeze: the rendered scripts live long too
            self._ahead.start()
        # Everything allocated so far (modules, templates, the app) lives as long as the
        # process: move it out of the collector's way, so full collections during a burst
        # scan only what requests allocate, not the whole heap.
        gc.freeze()
        log.info("HTTP boot server listening on %s:%d", bound[0], self.port)

    def render_again(self) -> None:
        """Render the inventory's iPXE scripts now (a reload changed catalog or inventory)."""
        if self._ahead is not None:
            self._ahead.again()

    def reload(self, catalog: RenderCatalog) -> None:
        """Answer from ``catalog`` from now on (SIGHUP). Scripts rendered from the old one are
        dropped; the inventory's are rendered again on the next turn of the event loop, so
        after the caller has also swapped what ``context_for`` and ``inventory`` read."""
        svc = self.app[SERVICE]
        svc.catalog = catalog
        svc.ipxe_cache.clear()
        svc.ipxe_ahead.clear()
        self.render_again()

    async def close(self) -> None:
        if self._ahead is not None:
            await self._ahead.close()
            self._ahead = None
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        if self.fast is not None:
            for connection in list(self.fast.connections):
                connection.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=_BACKLOG)


class _Acceptor:
    """Accepts connections and hands each to aiohttp (``loop.connect_accepted_socket``).

    Not ``loop.create_server``: on uvloop that accepts one connection per loop iteration
    (strace: one accept4 per epoll_wait), so when a rack's clients connect at once the last
    ones wait behind a round of everyone else's requests per connection accepted before
    theirs. Draining the accept queue on each wake-up, as asyncio's own loop does, behaves the
    same on both loops.
    """

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol]) -> None:
        self._sock = sock
        self._factory = factory
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._paused: asyncio.TimerHandle | None = None
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._on_readable)

    def _on_readable(self) -> None:
        for _ in range(_BACKLOG):
            try:
                conn, _peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of file descriptors or memory (EMFILE, ENFILE, ENOBUFS): the queue stays
                # readable, so stop watching for a second instead of spinning.
                log.warning("HTTP: accepting a connection failed: %s; retrying in 1 s", exc)
                self._loop.remove_reader(self._sock.fileno())
                self._paused = self._loop.call_later(1.0, self._resume)
                return
            conn.setblocking(False)
            task = self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
            self._tasks.add(task)
            task.add_done_callback(self._connected)

    def _connected(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("HTTP: a connection closed before it was set up: %s", task.exception())

    def _resume(self) -> None:
        self._paused = None
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        else:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
