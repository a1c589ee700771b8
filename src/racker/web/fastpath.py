"""The boot scripts' fast path: ``GET /boot.ipxe`` and ``GET /ipxe`` without aiohttp's request work.

A rack powering on asks for every node's ``/ipxe`` within a few milliseconds, each over the
connection its ``/boot.ipxe`` came on (iPXE keeps it alive). Through aiohttp each request first
pays for a request object, the middleware, routing and a response object, and a burst of them
queues behind that work before a single one is answered (bench/http.py's ``/healthz`` bursts;
docs/benchmarks.md, "HTTP"). This protocol answers those two requests itself, from the same
``BootService`` methods aiohttp's handlers call, and records them the same way (metrics, log
line, ``HttpEvent``).

Anything else, or anything it does not fully understand (another method or path, a header
other than the few a plain GET carries, a header twice, no Host, obsolete line folding, bytes
outside printable ASCII, an over-long head), hands the connection, with every byte not yet
answered, to aiohttp's own protocol, which serves it from then on: the fast path never answers
a request aiohttp would answer differently, and never refuses one aiohttp would serve. A
property test sends the same bytes to a server with and without the fast path and compares.

Only aiohttp's public names are used: the query is decoded here (``decode_query``, tested
against aiohttp's own ``request.query``) and the socket options aiohttp sets on its
connections are set on the socket directly.
"""

from __future__ import annotations

import asyncio
import email.utils
import http
import logging
import socket
import time
from collections.abc import Callable, ItemsView, Iterator, Mapping, ValuesView
from dataclasses import dataclass
from typing import cast
from urllib.parse import unquote_plus

from aiohttp.http import SERVER_SOFTWARE

from racker.model import parse_mac
from racker.web.boot_script import boot_script
from racker.web.handlers import Answer, Ask, BootService

log = logging.getLogger("racker.http")

# aiohttp's limits (max_line_size, max_field_size, max_headers): a head beyond them is aiohttp's
# to refuse, with its own error.
MAX_HEAD = 8190
MAX_HEADERS = 128
FAST_PATHS = ("/boot.ipxe", "/ipxe")
# The headers iPXE, curl and browsers send with a plain GET. Any other header (a body, an
# upgrade, a range, credentials...) or any header twice: aiohttp's business (it refuses some
# duplicates, RFC 9110's singleton fields, and knows what the others mean).
_PLAIN_HEADERS = frozenset(
    {b"host", b"connection", b"user-agent", b"accept", b"accept-encoding", b"accept-language",
     b"cache-control", b"pragma", b"keep-alive"}
)  # fmt: skip
# Byte classes, checked with ``bytes.translate(None, allowed)``: what is left is not allowed.
_ALPHANUM = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKEN = _ALPHANUM + b"!#$%&'*+-.^_`|~"  # RFC 9110 5.6.2: header names
_HEAD = bytes(range(0x20, 0x7F)) + b"\t\r\n"  # printable ASCII, tab, line ends
_TARGET = _ALPHANUM + b"-._~!$&'()*+,;=:@/?%"  # RFC 3986: unreserved, sub-delims, : @ / ? %


@dataclass(frozen=True, slots=True)
class Head:
    """A request the fast path answers: ``GET`` of one of ``FAST_PATHS``, no body."""

    path: str
    raw_query: str
    host: str
    version: str  # "1.0" or "1.1"
    keep_alive: bool


def parse_head(head: bytes) -> Head | None:
    """The request in ``head`` (without its final CRLF CRLF), or None: aiohttp decides.

    Pure; only requests whose meaning is unambiguous are taken (see the module docstring).
    """
    if len(head) > MAX_HEAD or head.translate(None, _HEAD):
        return None
    if head.count(b"\n") != head.count(b"\r\n") or head.count(b"\r") != head.count(b"\r\n"):
        return None  # a bare CR or LF
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        return None
    if parts[1].translate(None, _TARGET):
        return None  # a fragment, a quote, a tab...: characters a parser may treat its own way
    target = parts[1].decode("ascii")
    path, sep, raw_query = target.partition("?")
    if path not in FAST_PATHS:
        return None
    if len(lines) - 1 > MAX_HEADERS:
        return None
    host: str | None = None
    connection: list[bytes] = []
    seen: set[bytes] = set()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None  # also obsolete line folding: a line starting with a space or tab
        name = name.lower()
        if name not in _PLAIN_HEADERS or name in seen:
            return None
        seen.add(name)
        value = value.strip(b" \t")
        if name == b"host":
            host = value.decode("ascii")
        elif name == b"connection":
            connection.extend(t.strip(b" \t").lower() for t in value.split(b","))
    if not host:
        return None
    version = "1.1" if parts[2] == b"HTTP/1.1" else "1.0"
    tokens = set(connection) - {b""}
    if not tokens <= {b"close", b"keep-alive"} or len(tokens) > 1:
        return None  # "upgrade", both at once...: aiohttp's rules, not a guess of them
    # RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
    keep_alive = b"close" not in tokens if version == "1.1" else b"keep-alive" in tokens
    return Head(path, raw_query if sep else "", host, version, keep_alive)


class Query(Mapping[str, str]):
    """A decoded query read as aiohttp's ``request.query`` (a multidict) reads: ``q[name]``,
    ``get`` and ``in`` see the first value of a repeated name, iteration each name once;
    ``len``, ``items()`` and ``values()`` see every pair, in order."""

    __slots__ = ("_first", "pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self.pairs = pairs
        first: dict[str, str] = {}
        for name, value in pairs:
            first.setdefault(name, value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self.pairs)

    def items(self) -> ItemsView[str, str]:
        return _Pairs(self)

    def values(self) -> ValuesView[str]:
        return _Values(self)


class _Pairs(ItemsView[str, str]):
    def __init__(self, query: Query) -> None:
        super().__init__(query)
        self._query = query

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._query.pairs)

    def __contains__(self, item: object) -> bool:
        return item in self._query.pairs


class _Values(ValuesView[str]):
    def __init__(self, query: Query) -> None:
        super().__init__(query)
        self._query = query

    def __iter__(self) -> Iterator[str]:
        return (value for _, value in self._query.pairs)

    def __contains__(self, value: object) -> bool:
        return any(v == value for _, v in self._query.pairs)


def decode_query(raw: str) -> Query:
    """``raw`` (percent-encoded, as sent) decoded as aiohttp decodes a request's query: split
    at ``&``, name and value at the first ``=``, ``+`` is a space, ``%XX`` escapes are UTF-8
    (undecodable bytes become U+FFFD, a malformed escape stays as it is), empty fields dropped.
    """
    pairs = []
    for field in raw.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        if "%" in field or "+" in field:
            name, value = unquote_plus(name), unquote_plus(value)
        pairs.append((name, value))
    return Query(pairs)


class HttpDate:
    """The Date header's value, formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = email.utils.formatdate(second, usegmt=True).encode("ascii")
        return self._text


_SERVER = SERVER_SOFTWARE.encode("ascii")


def encode_answer(answer: Answer, head: Head, date: bytes) -> bytes:
    """The response bytes, with the headers aiohttp's ``web.Response(text=...)`` sends."""
    body = answer.text.encode("utf-8")
    status = http.HTTPStatus(answer.status)
    connection = b""
    if head.version == "1.1" and not head.keep_alive:
        connection = b"Connection: close\r\n"
    elif head.version == "1.0" and head.keep_alive:
        connection = b"Connection: keep-alive\r\n"
    return b"HTTP/%s %d %s\r\nContent-Type: %s; charset=utf-8\r\nContent-Length: %d\r\n" \
        b"Date: %s\r\nServer: %s\r\n%s\r\n%s" % (
            head.version.encode(), status.value, status.phrase.encode(),
            answer.content_type.encode(), len(body), date, _SERVER, connection, body,
        )  # fmt: skip


Record = Callable[[str, str, str, str | None, str, int, int, float], None]


class FastPathServer:
    """What every fast-path connection shares: the service, aiohttp's protocol factory for
    the hand-off, the recorder, the open connections (to close them on shutdown)."""

    def __init__(
        self,
        svc: BootService,
        handoff: Callable[[], asyncio.Protocol],
        record: Record,
        keepalive_timeout: float,
    ) -> None:
        self.svc = svc
        self.handoff = handoff
        self.record = record
        self.keepalive_timeout = keepalive_timeout
        self.connections: set[BootFastPath] = set()
        self.date = HttpDate()
        self.answered = 0  # requests the fast path answered (tests check it does answer)
        self.handed_off = 0  # connections given to aiohttp

    def __call__(self) -> BootFastPath:
        return BootFastPath(self)

    def answer(self, head: Head, remote: str | None) -> bytes:
        svc, start = self.svc, time.perf_counter()
        base = svc.server_url.rstrip("/") if svc.server_url else f"http://{head.host}"
        mac = None
        try:
            query = decode_query(head.raw_query)
            mac = parse_mac(query.get("mac", ""))
            if head.path == "/ipxe":
                answer = svc.ipxe_answer(Ask(query, head.raw_query, base, remote))
            else:
                answer = Answer(200, boot_script(base))
        except Exception:  # a bug: answer 500 and keep serving, as aiohttp does
            log.exception("answering GET %s failed", head.path)
            answer = Answer(500, "500 Internal Server Error\n")
        data = encode_answer(answer, head, self.date.now())
        self.answered += 1
        sent = len(data) - data.index(b"\r\n\r\n") - 4
        duration = time.perf_counter() - start
        self.record("GET", head.path, head.path, mac, remote or "", answer.status, sent, duration)
        return data


class BootFastPath(asyncio.Protocol):
    """One connection: answers fast-path requests until the first one that is not."""

    def __init__(self, server: FastPathServer) -> None:
        self.server = server
        self.transport: asyncio.Transport  # from connection_made on
        self.remote: str | None = None
        self.buffer = b""
        self.paused = False
        self.last_request = 0.0
        self.idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.remote = peer[0] if isinstance(peer, tuple) else None
        # What aiohttp's protocol sets on each of its connections: keep-alive probes, so a
        # client gone without a FIN is found out, and no Nagle delay, so an answer written
        # while an earlier one is unacknowledged (pipelining, the hand-off) is not held back
        # waiting for the client's delayed ACK. asyncio's transport leaves TCP_NODELAY off on
        # these sockets (it sets it only when the socket's proto is IPPROTO_TCP, and an
        # accepted socket's is 0).
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        loop = asyncio.get_running_loop()
        self.last_request = loop.time()
        self.idle = loop.call_at(self.last_request + self.server.keepalive_timeout, self._idle)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        out: list[bytes] = []
        while buffer:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEAD or b"\n\n" in buffer or buffer.startswith(b"\r\n"):
                    return self._hand_off(out, buffer)
                break
            head = parse_head(buffer[:end])
            if head is None:
                return self._hand_off(out, buffer)
            buffer = buffer[end + 4 :]
            out.append(self.server.answer(head, self.remote))
            if not head.keep_alive:
                self.transport.write(b"".join(out))
                self.transport.close()
                return None
        self.buffer = buffer
        if out:
            self.last_request = asyncio.get_running_loop().time()
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))
        return None

    def _hand_off(self, out: list[bytes], rest: bytes) -> None:
        """Give the connection to aiohttp: what is answered goes first, ``rest`` to it."""
        if out:
            self.transport.write(b"".join(out))
        self._forget()
        self.server.handed_off += 1
        if self.paused:
            self.transport.resume_reading()
        protocol = self.server.handoff()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        if rest:
            protocol.data_received(rest)

    def _forget(self) -> None:
        self.server.connections.discard(self)
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None

    def _idle(self) -> None:
        # No request for keepalive_timeout: close (aiohttp does the same for its connections).
        loop = asyncio.get_running_loop()
        due = self.last_request + self.server.keepalive_timeout
        if loop.time() >= due:
            self.idle = None
            self.transport.close()
        else:
            self.idle = loop.call_at(due, self._idle)

    def pause_writing(self) -> None:
        # A client that sends requests but does not read the answers: stop reading them.
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.paused = False
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()

    def close(self) -> None:
        self.transport.close()
