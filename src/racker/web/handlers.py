"""The endpoint handlers of the boot HTTP server (the route table is in ``server.py``).

Per-node answers (``/ipxe``, ``/ignition``, ``/metadata``) are rendered by the profile catalog;
this module only turns a request into ``NodeFacts`` + ``RenderContext``, checks tokens and lease
binding, and turns the result (or a ``NoMatch``) into a response iPXE can show.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from racker.errors import RackerError
from racker.events import PhoneHomeEvent, Publish, discard
from racker.model import parse_mac
from racker.profiles import NodeFacts, NoMatch, RenderContext
from racker.web.assets import resolve_asset
from racker.web.boot_script import boot_script
from racker.web.metrics import HttpMetrics
from racker.web.sendfile import send_file
from racker.web.tokens import check_token, make_token

log = logging.getLogger("racker.http")

IGNITION_TYPE = "application/vnd.coreos.ignition+json"
PHONE_HOME_EVENTS = frozenset({"install-started", "installed", "failed"})
_MAX_MESSAGE = 2000
_IPXE_CACHE_SIZE = 4096


class Rendered(Protocol):
    @property
    def text(self) -> str: ...


class RenderCatalog(Protocol):
    """The part of ``racker.profiles.Catalog`` the server uses."""

    @property
    def ipxe_reads_request(self) -> str | None:
        """None when an iPXE answer reads nothing of the request but the MAC (scripts can be
        cached per node and rendered ahead); else why not, for the log."""
        ...

    def render_ipxe(self, facts: NodeFacts, ctx: RenderContext) -> Rendered: ...
    def render_ignition(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]: ...
    def render_metadata(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]: ...


ContextFor = Callable[[NodeFacts], RenderContext]
AddressOf = Callable[[str], str | None]
NodeStates = Callable[[], Any]  # returns something json.dumps can write


def _no_nodes() -> list[Any]:
    return []


def _no_address(_mac: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Ask:
    """What the per-node endpoints read of a request (aiohttp's, or the fast path's)."""

    query: Mapping[str, str]  # the decoded query (aiohttp: ``request.query``)
    raw_query: str  # as sent, percent-encoded
    base: str  # this server's base URL as the node reaches it, no trailing slash
    remote: str | None  # the client's address


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    text: str
    content_type: str = "text/plain"


@dataclass(frozen=True, slots=True)
class IpxeEntry:
    """A rendered iPXE script and what it was rendered from."""

    expires: int  # the token expiry in its URLs
    mac: str
    facts: NodeFacts
    node_context: RenderContext  # what ``context_for`` gave, before the URLs were added
    text: str


@dataclass
class BootService:
    """Everything the handlers need; one per application, no globals."""

    catalog: RenderCatalog
    context_for: ContextFor
    key: bytes
    assets_dir: Path
    publish: Publish = discard
    node_states: NodeStates = _no_nodes
    address_of: AddressOf = _no_address
    bind_to_lease: bool = False
    server_url: str | None = None  # None: from the request's Host header
    token_ttl: int = 86400
    # Token expiries are rounded up to a multiple of this, so a node's URLs (and its rendered
    # iPXE script) stay the same for a while and renders can be reused; see ``ipxe_cache``.
    expiry_step: int = 300
    clock: Callable[[], float] = time.time
    metrics: HttpMetrics = field(default_factory=HttpMetrics)
    # Rendered iPXE scripts: rendering, the two token HMACs and building the context were most
    # of an /ipxe request's cost (profiled), and a rack booting at once asks the same things.
    # Keyed by (MAC, base URL) when the catalog's iPXE answers read nothing of the request but
    # the MAC (its ``ipxe_reads_request`` is None), else by (raw query, base URL). An entry is
    # used only while its token expiry is current and ``context_for`` still gives an equal
    # context, so a changed node state renders afresh. ``ipxe_ahead`` holds the inventory
    # nodes' scripts rendered before they ask (``racker.web.ahead``); ``ipxe_cache`` what
    # requests rendered.
    ipxe_cache: dict[tuple[str, str], IpxeEntry] = field(default_factory=dict)
    ipxe_ahead: dict[tuple[str, str], IpxeEntry] = field(default_factory=dict)

    # -- helpers -------------------------------------------------------------------------

    def base_url(self, request: web.Request) -> str:
        if self.server_url:
            return self.server_url.rstrip("/")
        return f"{request.scheme}://{request.host}"

    def ask(self, request: web.Request) -> Ask:
        return Ask(
            request.query, request.rel_url.raw_query_string, self.base_url(request), request.remote
        )

    def facts(self, query: Mapping[str, str]) -> NodeFacts:
        q = query
        return NodeFacts(
            mac=parse_mac(q.get("mac", "")),
            uuid=q.get("uuid") or None,
            serial=q.get("serial") or None,
            hostname=q.get("hostname") or None,
            platform=q.get("platform") or None,
            buildarch=q.get("buildarch") or None,
            query={k: v for k, v in q.items() if k != "token"},
        )

    def token_expiry(self) -> int:
        """The expiry of tokens handed out now: rounded up to ``expiry_step``, so it (and
        every URL carrying a token) stays the same for that long."""
        step = max(1, self.expiry_step)
        return (int(self.clock()) // step + 1) * step + self.token_ttl

    def context(
        self,
        base: str,
        facts: NodeFacts,
        mac: str,
        node_context: RenderContext | None = None,
        expires: int | None = None,
    ) -> RenderContext:
        if expires is None:
            expires = self.token_expiry()
        ignition = make_token(self.key, mac, "ignition", expires)
        events = make_token(self.key, mac, "events", expires)
        return dataclasses.replace(
            self.context_for(facts) if node_context is None else node_context,
            server_url=base,
            ignition_url=f"{base}/ignition?mac={mac}&token={ignition}",
            events_url=f"{base}/api/v1/events?mac={mac}&token={events}",
            assets_url=f"{base}/assets",
        )

    def token_ok(self, query: Mapping[str, str], mac: str, purpose: str) -> bool:
        token = query.get("token", "")
        return bool(token) and check_token(self.key, token, mac, purpose, self.clock())

    def lease_ok(self, remote: str | None, mac: str) -> bool:
        """With bind_to_lease, per-node answers go only to the address that MAC leased."""
        if not self.bind_to_lease:
            return True
        address = self.address_of(mac)
        return address is not None and address == remote

    def render(self, kind: str, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.metrics.render_seconds.labels(kind).observe(time.perf_counter() - start)

    def _ipxe_key(self, ask: Ask, mac: str | None) -> tuple[str, str]:
        if self.catalog.ipxe_reads_request is None:
            return (mac or "", ask.base)
        return (ask.raw_query, ask.base)

    def cached_ipxe(self, ask: Ask) -> str | None:
        """The script rendered for the same question, if nothing it depends on has changed."""
        per_node = self.catalog.ipxe_reads_request is None
        mac = parse_mac(ask.query.get("mac", "")) if per_node else None
        key = self._ipxe_key(ask, mac)
        entry = self.ipxe_ahead.get(key) or self.ipxe_cache.get(key)
        if (
            entry is None
            or entry.expires != self.token_expiry()
            or not self.lease_ok(ask.remote, entry.mac)
            or self.context_for(entry.facts) != entry.node_context
        ):
            return None
        return entry.text

    def render_ipxe_entry(self, base: str, facts: NodeFacts, mac: str) -> IpxeEntry:
        node_context, expires = self.context_for(facts), self.token_expiry()
        ctx = self.context(base, facts, mac, node_context, expires)
        text: str = self.render("ipxe", lambda: self.catalog.render_ipxe(facts, ctx)).text
        return IpxeEntry(expires, mac, facts, node_context, text)

    def ipxe_text(self, ask: Ask, facts: NodeFacts, mac: str) -> str:
        entry = self.render_ipxe_entry(ask.base, facts, mac)
        key = self._ipxe_key(ask, mac)
        if key in self.ipxe_ahead:  # rendered ahead, then the node's state changed
            self.ipxe_ahead[key] = entry
            return entry.text
        if len(self.ipxe_cache) >= _IPXE_CACHE_SIZE:
            self.ipxe_cache.clear()
        self.ipxe_cache[key] = entry
        return entry.text

    def ipxe_answer(self, ask: Ask) -> Answer:
        text = self.cached_ipxe(ask)
        if text is not None:
            return Answer(200, text)
        return self.node_answer("ipxe", ask)

    def node_answer(self, kind: str, ask: Ask) -> Answer:
        """The answer to /ipxe, /ignition or /metadata for the machine the query names."""
        facts = self.facts(ask.query)
        mac = facts.mac
        if mac is None:
            return _failure(400, "missing or malformed mac= (chain from /boot.ipxe)")
        if kind == "ignition" and not self.token_ok(ask.query, mac, "ignition"):
            return _failure(403, f"missing, expired or invalid token for {mac}; fetch /ipxe again")
        if not self.lease_ok(ask.remote, mac):
            return _failure(403, f"{mac} has no lease for {ask.remote} (http.bind_to_lease)")
        try:
            if kind == "ipxe":
                return Answer(200, self.ipxe_text(ask, facts, mac))
            ctx = self.context(ask.base, facts, mac)
            if kind == "ignition":
                data = self.render(kind, lambda: self.catalog.render_ignition(facts, ctx))
                return Answer(200, json.dumps(data), IGNITION_TYPE)
            data = self.render(kind, lambda: self.catalog.render_metadata(facts, ctx))
            return _metadata_answer(ask.query, data)
        except NoMatch as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            return _failure(404, f"no {kind} for {mac}: {exc.message}{hint}")
        except RackerError as exc:
            log.error("rendering %s for %s failed: %s", kind, mac, exc.message)
            return _failure(500, f"rendering {kind} for {mac} failed: {exc.message}")

    # -- endpoints -----------------------------------------------------------------------

    async def boot_ipxe(self, request: web.Request) -> web.Response:
        return web.Response(text=boot_script(self.base_url(request)))

    async def ipxe(self, request: web.Request) -> web.Response:
        return _response(self.ipxe_answer(self.ask(request)))

    async def ignition(self, request: web.Request) -> web.Response:
        return _response(self.node_answer("ignition", self.ask(request)))

    async def metadata(self, request: web.Request) -> web.Response:
        return _response(self.node_answer("metadata", self.ask(request)))

    async def assets(self, request: web.Request) -> web.StreamResponse:
        # realpath and stat read the disk: in a worker thread, not on the event loop.
        found = await asyncio.to_thread(resolve_asset, self.assets_dir, request.match_info["path"])
        if found.path is None:
            log.debug("asset %s refused: %s", request.rel_url.raw_path, found.reason)
            return _text(404, "no such asset")
        return AssetResponse(found.path)

    async def events(self, request: web.Request) -> web.Response:
        mac = parse_mac(request.query.get("mac", ""))
        if mac is None:
            return _text(400, "missing or malformed mac=")
        if not self.token_ok(request.query, mac, "events"):
            return _text(403, f"missing, expired or invalid token for {mac}")
        raw = await request.read()
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            return _text(400, f"the event body is not JSON: {exc}")
        if not isinstance(body, dict):
            return _text(
                400, 'the event body must be a JSON object: {"event": ..., "message": ...}'
            )
        kind = body.get("event")
        if kind not in PHONE_HOME_EVENTS:
            known = ", ".join(sorted(PHONE_HOME_EVENTS))
            return _text(400, f"unknown event {kind!r}; expected one of: {known}")
        message = body.get("message", "")
        if not isinstance(message, str):
            return _text(400, "message must be a string")
        event = PhoneHomeEvent(kind=kind, mac=mac, ts=self.clock(), message=message[:_MAX_MESSAGE])
        self.publish(event)
        return web.json_response({"accepted": kind})

    async def nodes(self, _request: web.Request) -> web.Response:
        return web.Response(
            text=json.dumps(self.node_states(), default=str), content_type="application/json"
        )

    async def metrics_text(self, _request: web.Request) -> web.Response:
        return web.Response(
            body=self.metrics.exposition(), headers={"Content-Type": self.metrics.content_type}
        )

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")


class AssetResponse(web.FileResponse):
    """aiohttp's FileResponse (its status, headers, conditions and ranges), with the body sent
    by ``racker.web.sendfile`` instead of ``loop.sendfile``, and that may be prepared twice
    (the second time is a no-op).

    The observing middleware sends the response itself to learn its status and size; aiohttp
    then calls ``prepare`` again, which FileResponse would answer by sending the file again.
    ``_sendfile`` is FileResponse's one hook for the body (aiohttp 3.9 to 3.14); a test checks
    the body does go through ``send_file``, so a release that renames it fails loudly.
    """

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self.prepared:
            return await web.StreamResponse.prepare(self, request)
        return await super().prepare(request)

    async def _sendfile(
        self, request: web.BaseRequest, fobj: IO[Any], offset: int, count: int
    ) -> AbstractStreamWriter:
        if self.compression:  # never set on assets; FileResponse reads and compresses then
            return await super()._sendfile(request, fobj, offset, count)
        writer = await web.StreamResponse.prepare(self, request)  # the status line and headers
        assert writer is not None
        transport = request.transport
        if transport is None:
            raise ConnectionResetError("Connection lost")
        try:
            await send_file(transport, fobj, offset, count)
        except NotImplementedError:  # uvloop's loop.sendfile, in send_file's rare fallback
            return await self._sendfile_fallback(writer, fobj, offset, count)
        await web.StreamResponse.write_eof(self)
        return writer


def _text(status: int, message: str) -> web.Response:
    return _response(_failure(status, message))


def _failure(status: int, message: str) -> Answer:
    # iPXE prints nothing of a failed body, but curl and operators reading logs do.
    return Answer(status, f"racker: {message}\n")


def _response(answer: Answer) -> web.Response:
    return web.Response(status=answer.status, text=answer.text, content_type=answer.content_type)


def _metadata_answer(query: Mapping[str, str], data: Mapping[str, Any]) -> Answer:
    """JSON by default; ``KEY=value`` lines for ``?format=env`` (shell-sourceable)."""
    if query.get("format") != "env":
        return Answer(200, json.dumps(data), "application/json")
    lines = [f"{key}={shlex.quote(value)}" for key, value in _flatten(data, "")]
    return Answer(200, "\n".join(lines) + "\n")


def _flatten(data: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}".upper().replace("-", "_").replace(".", "_")
        if isinstance(value, Mapping):
            out.extend(_flatten(value, name + "_"))
        elif isinstance(value, list | tuple):
            out.append((name, " ".join(str(v) for v in value)))
        elif isinstance(value, bool):
            out.append((name, "true" if value else "false"))
        else:
            out.append((name, "" if value is None else str(value)))
    return out
