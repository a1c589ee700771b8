"""The fast path answers exactly as aiohttp would (aiohttp is the reference).

Two servers in one event loop, alike but for the fast path: the same catalog, key, clock,
lease binding. The fast one also renders its inventory ahead; the reference renders every
request. Hypothesis sends both the same 1-3 requests (iPXE-like ones and every kind of
oddity), one after the other on a fresh connection, and compares what comes back: each
response's status, headers (but Date and Server) and body, whether the connection is left
open, and the requests each server recorded (its HttpEvents).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from racker.events import Event, HttpEvent
from racker.web import BootHttpServer
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import KNOWN_MAC, OTHER_MAC, StandinCatalog, context_for

MACS = st.sampled_from(
    ["52-54-00-AA-00-01", "52:54:00:aa:00:02", "52-54-00-ff-ff-ff", "zz", "", "52%2D54-00-AA-00-01"]
)
VALUES = st.sampled_from(["", "x", "RACK%2042", "a+b", "%zz", "%C3%A9", "4c4c4544-0042"])
PARAM = st.one_of(
    st.tuples(st.just("mac"), MACS),
    st.tuples(st.sampled_from(["uuid", "serial", "hostname", "platform", "token"]), VALUES),
).map("=".join)
QUERY = st.one_of(
    st.just(""),
    st.lists(PARAM, min_size=1, max_size=5).map(lambda ps: "?" + "&".join(ps)),
    st.sampled_from(["?", "?mac", "?mac=52-54-00-AA-00-01;uuid=1", '?mac="x"', "?a={b}", "?#f"]),
)
PATHS = st.sampled_from(
    ["/ipxe", "/ipxe", "/ipxe", "/boot.ipxe", "/ipxe/", "/IPXE", "/ip%78e", "/healthz", "/nope"]
)
HEADERS = st.lists(
    st.sampled_from(
        [
            "Connection: keep-alive",
            "Connection: close",
            "connection: Keep-Alive",
            "Connection: close, keep-alive",
            "Connection: Upgrade",
            "User-Agent: iPXE/1.21.1+ (g4bd064de)",
            "Host: 10.99.0.1:8080",
            "Host: other",
            "Content-Length: 0",
            "X-Odd : spaced",
            "X-Folded: a\r\n  b",
            "Accept: */*",
        ]
    ),
    max_size=3,
)


@st.composite
def ipxe_requests(draw: Any) -> bytes:
    """What iPXE (or curl) sends: the fast path's own ground, with varied facts."""
    path = draw(st.sampled_from(["/ipxe", "/ipxe", "/boot.ipxe"]))
    query = "&".join(draw(st.lists(PARAM, max_size=6)))
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    headers = ["Host: 10.99.0.1:8080"]
    for extra in ("Connection: keep-alive", "User-Agent: iPXE/1.21.1+", "Accept: */*"):
        if draw(st.booleans()):
            headers.append(extra)
    headers = draw(st.permutations(headers))
    target = f"{path}?{query}" if query else path
    return (f"GET {target} {version}\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


@st.composite
def odd_requests(draw: Any) -> bytes:
    """Other methods, paths, versions, headers and line ends: mostly aiohttp's to answer."""
    method = draw(st.sampled_from(["GET"] * 6 + ["HEAD", "POST"]))
    version = draw(st.sampled_from(["HTTP/1.1"] * 4 + ["HTTP/1.0", "HTTP/2.0"]))
    target = draw(PATHS) + draw(QUERY)
    headers = draw(HEADERS)
    if draw(st.booleans()) or not headers:
        headers = ["Host: 10.99.0.1:8080", *headers]
    end = draw(st.sampled_from(["\r\n"] * 9 + ["\n"]))
    return (f"{method} {target} {version}{end}" + end.join(headers) + end + end).encode()


Response = tuple[int, bytes, tuple[tuple[str, str], ...]]


async def exchange(port: int, batch: list[bytes]) -> tuple[list[Response], bool]:
    """Send the requests one after the other on one connection, each once the previous one
    is answered; return the responses and whether the server closed the connection.

    Not pipelined: aiohttp answers a pipelined batch whose later request is malformed with a
    single 400 when the batch arrives in one read, and answers the first request when it
    arrives in two (its parser fails the whole chunk), so its answer depends on how TCP cut
    the bytes. The fast path's pipelining is tested in test_web_fastpath.py.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    responses: list[Response] = []
    closed = False
    try:
        for data in batch:
            writer.write(data)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            lines = head.decode("latin-1").split("\r\n")
            pairs = [x.partition(":") for x in lines[1:] if x]
            headers = tuple(sorted((k.lower(), v.strip()) for k, _, v in pairs))
            length = dict(headers).get("content-length", "0")
            body = b"" if data.startswith(b"HEAD ") else await reader.readexactly(int(length))
            drop = {"date", "server"}
            responses.append(
                (int(lines[0].split()[1]), body, tuple(h for h in headers if h[0] not in drop))
            )
        closed = await asyncio.wait_for(reader.read(1), 0.02) == b""
    except (asyncio.IncompleteReadError, ConnectionError):
        closed = True
    except TimeoutError:
        pass  # still open
    writer.close()
    return responses, closed


@pytest.fixture(params=["http://10.99.0.1:8080", None], ids=["server_url", "from Host"])
def servers(request: Any, tmp_path: Path) -> Iterator[tuple[asyncio.AbstractEventLoop, Any, Any]]:
    loop = asyncio.new_event_loop()
    made = []
    for fast in (True, False):
        events: list[Event] = []
        srv = BootHttpServer(
            "127.0.0.1",
            0,
            StandinCatalog(ipxe_per_node=True),
            context_for,
            key=KEY,
            assets_dir=tmp_path,
            publish=events.append,
            clock=lambda: NOW,
            server_url=request.param,
            bind_to_lease=True,
            address_of={KNOWN_MAC: "127.0.0.1", OTHER_MAC: "10.0.0.9"}.get,
            fast_path=fast,
            inventory=(lambda: [KNOWN_MAC, OTHER_MAC]) if fast else None,
        )
        loop.run_until_complete(srv.start())
        made.append((srv, events))
    try:
        yield loop, made[0], made[1]
    finally:
        for srv, _ in made:
            loop.run_until_complete(srv.close())
        loop.close()
    fast = made[0][0].fast
    # The comparison means something only if the fast path answered many of the requests.
    print(f"fast path: {fast.answered} answered, {fast.handed_off} connections handed off")
    assert fast.answered >= 50, fast.answered


def recorded(events: list[Event]) -> list[tuple[Any, ...]]:
    return [
        (e.mac, e.peer, e.method, e.path, e.status, e.bytes)
        for e in events
        if isinstance(e, HttpEvent)
    ]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    batch=st.lists(
        st.one_of(ipxe_requests(), ipxe_requests(), odd_requests()), min_size=1, max_size=3
    )
)
def test_the_fast_path_answers_as_aiohttp_does(servers: Any, batch: list[bytes]) -> None:
    loop, (fast, fast_events), (ref, ref_events) = servers
    fast_events.clear()
    ref_events.clear()
    got = loop.run_until_complete(exchange(fast.port, batch))
    want = loop.run_until_complete(exchange(ref.port, batch))
    loop.run_until_complete(asyncio.sleep(0))  # aiohttp records after its last write
    assert got == want, batch
    assert recorded(fast_events) == recorded(ref_events), batch
