"""Run ``make_app`` under aiohttp's test client with a fixed key and clock."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from racker.events import Event
from racker.web import make_app
from tests.unit.web.standin import StandinCatalog, context_for

KEY = bytes(range(32))
NOW = 1_700_000_000.0


@contextlib.asynccontextmanager
async def web_client(
    assets_dir: Path, events: list[Event] | None = None, **options: Any
) -> AsyncIterator[TestClient[Any, Any]]:
    sink = events if events is not None else []
    options.setdefault("catalog", StandinCatalog())
    options.setdefault("server_url", "http://10.99.0.1:8080")
    app = make_app(
        options.pop("catalog"),
        context_for,
        key=KEY,
        assets_dir=assets_dir,
        publish=sink.append,
        clock=lambda: NOW,
        **options,
    )
    async with TestClient(TestServer(app)) as client:
        yield client
