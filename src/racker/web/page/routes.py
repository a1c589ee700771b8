"""The rack page's routes: the page, its script and style, a JSON snapshot, timelines, SSE."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web
from prometheus_client import CollectorRegistry

from racker.model import parse_mac
from racker.web.page.feed import RackFeed

FEED = web.AppKey("racker_rack_feed", RackFeed)
_TYPES = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
# Only racker's own files, no inline script: an injected string could not run.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
}


def add_page_routes(app: web.Application, feed: RackFeed, registry: CollectorRegistry) -> None:
    """Add the page's routes to ``app`` and run ``feed`` while the app runs."""
    feed.registry = registry
    app[FEED] = feed
    files = resources.files("racker.web") / "static"
    pages = {
        name: (files / name).read_bytes() for name in ("index.html", "rack.js", "rack.css")
    }  # read once here, never on the event loop per request

    def static(name: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        body = pages[name]
        kind = _TYPES[name.rsplit(".", 1)[1]]

        async def serve(_request: web.Request) -> web.Response:
            return web.Response(body=body, content_type=kind, charset="utf-8", headers=_HEADERS)

        return serve

    async def rack(_request: web.Request) -> web.Response:
        return web.json_response(feed.snapshot(), headers=_HEADERS)

    async def events(request: web.Request) -> web.Response:
        mac = parse_mac(request.match_info["mac"])
        found = await feed.timeline(mac) if mac else None
        if found is None:
            raise web.HTTPNotFound(text=f"no node with MAC {request.match_info['mac']!r}\n")
        return web.json_response({"mac": mac, "events": found}, headers=_HEADERS)

    async def start(_app: web.Application) -> None:
        await feed.start()

    async def stop(_app: web.Application) -> None:
        await feed.close()

    app.on_startup.append(start)
    app.on_shutdown.append(stop)
    app.router.add_routes(
        [
            web.get("/", static("index.html")),
            web.get("/ui/rack.js", static("rack.js")),
            web.get("/ui/rack.css", static("rack.css")),
            web.get("/api/v1/rack", rack),
            web.get("/api/v1/nodes/{mac}/events", events),
            web.get("/api/v1/stream", feed.streams.handler),
        ]
    )
