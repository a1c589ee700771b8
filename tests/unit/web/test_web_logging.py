"""Tokens never reach the logs: the real server (its runner, its access log) on loopback."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from racker.web import BootHttpServer
from racker.web.redact import redact
from racker.web.tokens import make_token
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import KNOWN_MAC, StandinCatalog, context_for


async def test_no_token_in_logs_at_info(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # every logger, aiohttp's access and server logs included
    server = BootHttpServer(
        "127.0.0.1",
        0,
        StandinCatalog(),
        context_for,
        key=KEY,
        assets_dir=tmp_path,
        clock=lambda: NOW,
    )
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    good = make_token(KEY, KNOWN_MAC, "ignition", int(NOW) + 60)
    events = make_token(KEY, KNOWN_MAC, "events", int(NOW) + 60)
    secrets = [good, events, "made-up-secret-token"]
    handed_out: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/ipxe", params={"mac": KNOWN_MAC}) as resp:
                script = await resp.text()
                handed_out.append(script.split("token=")[1].split()[0])
            for path, token in [
                ("/ignition", good),
                ("/ignition", "made-up-secret-token"),
                ("/nope", good),
                ("/assets/x", good),
            ]:
                async with session.get(f"{base}{path}", params={"mac": KNOWN_MAC, "token": token}):
                    pass
            async with session.post(
                f"{base}/api/v1/events", params={"mac": KNOWN_MAC, "token": events}, data=b"{bad"
            ) as resp:
                assert resp.status == 400
        # Requests aiohttp cannot parse, with a token in the request line or a header.
        for raw in (
            f"GET /ignition?token={good} HTTQ/1.1\r\n\r\n",
            f"GET /ignition?mac=x&token={good} HTTP/1.1\r\nHost: a\r\nX: token={good}\x01\r\n\r\n",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(raw.encode())
            await writer.drain()
            await reader.read()
            writer.close()
    finally:
        await server.close()
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "GET /ignition 200" in logged  # the access log is on, without the query
    for secret in secrets + handed_out:
        assert secret not in logged
    assert "token=<redacted>" in logged  # aiohttp's error line for the unparsable request


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "GET /ignition?mac=a&token=123.abc-_ HTTP/1.1",
            "GET /ignition?mac=a&token=<redacted> HTTP/1.1",
        ),
        ("b'/x?token=1.a&mac=b'", "b'/x?token=<redacted>&mac=b'"),
        ("no secrets here", "no secrets here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
