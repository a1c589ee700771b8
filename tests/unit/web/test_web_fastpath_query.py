"""The fast path decodes a query as aiohttp does (``racker.web.fastpath.decode_query``).

aiohttp is the reference: a table compares ``Query`` with aiohttp's ``request.query`` on every
way the handlers read it, and a property test asks a server with the fast path and one without
for ``/ipxe`` with the same odd queries, through a catalog that prints the facts it was given.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racker.profiles import NodeFacts, RenderContext
from racker.web import BootHttpServer
from racker.web.fastpath import decode_query
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import StandinRendered, context_for

QUERIES = [
    "mac=52-54-00-AA-00-01&uuid=&platform=efi",
    "",
    "&&",
    "a",
    "=",
    "=x",
    "a=b=c",
    "a=1;b=2",
    "a+b=c+d",
    "x=a%2Bb",
    "x=%26&y=1",
    "x=%zz",
    "x=%2",
    "x=%C3%A9",
    "x=%c3%a9",
    "x=%C3",
    "x=%FF%FE",
    "x=%E2%82%AC%zz",
    "x=%00",
    "%6D%61%63=52-54-00-AA-00-01",
    "mac=1&mac=2&uuid=u&mac=3",
]


@pytest.mark.parametrize("raw", QUERIES)
def test_a_query_reads_as_aiohttp_reads_it(raw: str) -> None:
    ours, theirs = decode_query(raw), make_mocked_request("GET", f"/ipxe?{raw}").query
    assert list(ours.items()) == list(theirs.items())
    assert list(ours) == list(theirs) and list(ours.values()) == list(theirs.values())
    assert len(ours) == len(theirs)
    for name in [*theirs, "absent"]:
        assert (ours.get(name), name in ours) == (theirs.get(name), name in theirs)
    for pair in [*theirs.items(), ("mac", "2")]:
        assert (pair in ours.items()) == (pair in theirs.items())
    assert {k: v for k, v in ours.items()} == {k: v for k, v in theirs.items()}  # noqa: C416


class EchoCatalog:
    """Prints the facts a request gave into the script: what a catalog sees is compared."""

    ipxe_reads_request = "the echo catalog prints the request's facts"

    def render_ipxe(self, facts: NodeFacts, ctx: RenderContext) -> StandinRendered:
        seen = [facts.mac, facts.uuid, facts.serial, facts.hostname, facts.platform,
                facts.buildarch, sorted(facts.query.items())]  # fmt: skip
        return StandinRendered("#!ipxe\n# " + json.dumps(seen) + "\n")

    def render_ignition(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        return {}

    def render_metadata(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        return {}


# Only what parse_head lets through to the fast path (RFC 3986 characters), and escapes.
PIECES = st.one_of(
    st.sampled_from(list("aZ09-._~!$'()*,;:@/?+=&")),
    st.sampled_from(["%2B", "%26", "%3D", "%20", "%C3%A9", "%C3", "%zz", "%2", "%00", "%E2%82%AC",
                     "%FF", "mac=", "uuid=", "serial=", "token=", "52-54-00-aa-00-02"]),
)  # fmt: skip
REST = st.lists(PIECES, max_size=12).map("".join)


async def ask(port: int, target: str) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 10.99.0.1:8080\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    lines = head.lower().split(b"\r\n")
    length = next(int(line[15:]) for line in lines if line.startswith(b"content-length:"))
    body = await reader.readexactly(length)
    writer.close()
    return int(head.split()[1]), body


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, Any, Any]]:
    loop = asyncio.new_event_loop()
    made = []
    for fast in (True, False):
        srv = BootHttpServer("127.0.0.1", 0, EchoCatalog(), context_for, key=KEY,
                             assets_dir=tmp_path, clock=lambda: NOW,
                             server_url="http://10.99.0.1:8080", fast_path=fast)  # fmt: skip
        loop.run_until_complete(srv.start())
        made.append(srv)
    try:
        yield loop, made[0], made[1]
    finally:
        for srv in made:
            loop.run_until_complete(srv.close())
        loop.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rest=REST)
def test_the_catalog_sees_the_same_facts_on_both_paths(servers: Any, rest: str) -> None:
    loop, fast, reference = servers
    target = f"/ipxe?mac=52-54-00-AA-00-01&{rest}"
    answered = fast.fast.answered
    got = loop.run_until_complete(ask(fast.port, target))
    assert fast.fast.answered == answered + 1  # the fast path answered, not aiohttp
    assert got == loop.run_until_complete(ask(reference.port, target)), target
    assert got[0] == 200
