from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter

from racker.events import Event, HttpEvent, PhoneHomeEvent
from racker.profiles import NodeFacts, RenderContext
from racker.web import make_app
from racker.web.server import http_event
from racker.web.tokens import check_token, make_token
from tests.unit.web.helpers import KEY, NOW, web_client
from tests.unit.web.standin import (
    KNOWN_MAC,
    OTHER_MAC,
    UNKNOWN_MAC,
    StandinCatalog,
    context_for,
)

GOLDEN = Path(__file__).parent / "golden"
EXPIRES = 1_700_000_100 + 86400  # NOW rounded up to the next 300 s step, plus a day


def ignition_token(mac: str = KNOWN_MAC) -> str:
    return make_token(KEY, mac, "ignition", EXPIRES)


def events_token(mac: str = KNOWN_MAC) -> str:
    return make_token(KEY, mac, "events", EXPIRES)


async def test_boot_ipxe_is_the_golden_first_stage(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        resp = await client.get("/boot.ipxe")
        assert resp.status == 200
        assert await resp.text() == (GOLDEN / "boot.ipxe").read_text()


async def test_boot_ipxe_uses_the_request_host_without_a_configured_url(tmp_path: Path) -> None:
    async with web_client(tmp_path, server_url=None) as client:
        text = await (await client.get("/boot.ipxe")).text()
        port = client.server.port
    assert f"chain --autofree http://127.0.0.1:{port}/ipxe?mac=" in text


async def test_ipxe_renders_the_node_script_with_its_tokens(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        resp = await client.get(
            "/ipxe",
            params={
                "mac": "52-54-00-AA-00-01",
                "uuid": "",
                "platform": "efi",
                "buildarch": "x86_64",
            },
        )
        assert resp.status == 200
        text = await resp.text()
    assert text == (GOLDEN / "node.ipxe").read_text()
    assert f"token={ignition_token()}" in text
    assert f"/api/v1/events?mac={KNOWN_MAC}&token={events_token()}" in text


async def test_ipxe_passes_request_facts_to_the_catalog(tmp_path: Path) -> None:
    catalog = StandinCatalog()
    query = {"mac": KNOWN_MAC, "uuid": "u-1", "serial": "S N", "hostname": "", "token": "t"}
    async with web_client(tmp_path, catalog=catalog) as client:
        assert (await client.get("/ipxe", params=query)).status == 200
    _, facts, ctx = catalog.calls[0]
    assert (facts.mac, facts.uuid, facts.serial, facts.hostname) == (KNOWN_MAC, "u-1", "S N", None)
    assert "token" not in facts.query
    assert ctx.server_url == "http://10.99.0.1:8080"
    assert ctx.assets_url == "http://10.99.0.1:8080/assets"


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"mac": UNKNOWN_MAC}, 404, f"no ipxe for {UNKNOWN_MAC}: no group matches"),
        ({"mac": "nonsense"}, 400, "missing or malformed mac="),
        ({}, 400, "missing or malformed mac="),
    ],
)
async def test_ipxe_refusals_say_why(
    tmp_path: Path, query: dict[str, str], status: int, says: str
) -> None:
    async with web_client(tmp_path) as client:
        resp = await client.get("/ipxe", params=query)
        assert resp.status == status
        assert says in await resp.text()


async def test_ignition_needs_a_valid_token_for_that_mac(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        ok = await client.get("/ignition", params={"mac": KNOWN_MAC, "token": ignition_token()})
        assert ok.status == 200
        assert ok.content_type == "application/vnd.coreos.ignition+json"
        assert await ok.json(content_type=None) == json.loads((GOLDEN / "node.ign").read_text())
        for query in (
            {"mac": KNOWN_MAC},
            {"mac": KNOWN_MAC, "token": "garbage"},
            {"mac": KNOWN_MAC, "token": ignition_token(OTHER_MAC)},
            {"mac": KNOWN_MAC, "token": events_token()},  # right node, wrong purpose
            {"mac": KNOWN_MAC, "token": make_token(KEY, KNOWN_MAC, "ignition", int(NOW))},
        ):
            resp = await client.get("/ignition", params=query)
            assert resp.status == 403, query
            assert "invalid token" in await resp.text()


async def test_a_token_from_ipxe_opens_ignition(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        script = await (await client.get("/ipxe", params={"mac": KNOWN_MAC})).text()
        url = script.split("ignition.config.url=")[1].split()[0]
        token = url.split("token=")[1]
        assert check_token(KEY, token, KNOWN_MAC, "ignition", NOW)
        resp = await client.get("/ignition", params={"mac": KNOWN_MAC, "token": token})
        assert resp.status == 200


@pytest.mark.parametrize(
    ("leased", "remote_ok", "status"),
    [(None, False, 403), ("10.99.0.99", False, 403), ("127.0.0.1", True, 200)],
)
async def test_bind_to_lease(
    tmp_path: Path, leased: str | None, remote_ok: bool, status: int
) -> None:
    asked: list[str] = []

    def address_of(mac: str) -> str | None:
        asked.append(mac)
        return leased

    async with web_client(tmp_path, bind_to_lease=True, address_of=address_of) as client:
        query = {"mac": KNOWN_MAC, "token": ignition_token()}
        for path in ("/ignition", "/ipxe", "/metadata"):
            resp = await client.get(path, params=query)
            assert resp.status == status, path
            if status == 403:
                assert "bind_to_lease" in await resp.text()
    assert set(asked) == {KNOWN_MAC}


async def test_without_bind_to_lease_the_address_is_not_consulted(tmp_path: Path) -> None:
    def address_of(_mac: str) -> str | None:
        raise AssertionError("must not be called")

    async with web_client(tmp_path, address_of=address_of) as client:
        resp = await client.get("/ignition", params={"mac": KNOWN_MAC, "token": ignition_token()})
        assert resp.status == 200


async def test_metadata_as_json_and_as_env(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        data = await (await client.get("/metadata", params={"mac": KNOWN_MAC})).json()
        assert data["hostname"] == "worker-aa0001"
        env = await (
            await client.get("/metadata", params={"mac": KNOWN_MAC, "format": "env"})
        ).text()
        missing = await client.get("/metadata", params={"mac": UNKNOWN_MAC})
        assert missing.status == 404
    assert env.splitlines() == [
        "HOSTNAME=worker-aa0001",
        "MAC=52:54:00:aa:00:01",
        "NODE_TYPE=worker",
        "NODE_INDEX=1",
        "SSH_KEYS='ssh-ed25519 AAAA one ssh-ed25519 BBBB two'",
        "INSTALLED=false",
    ]


@pytest.mark.parametrize("kind", ["install-started", "installed", "failed"])
async def test_phone_home_publishes_an_event(tmp_path: Path, kind: str) -> None:
    events: list[Event] = []
    async with web_client(tmp_path, events) as client:
        resp = await client.post(
            "/api/v1/events",
            params={"mac": KNOWN_MAC, "token": events_token()},
            json={"event": kind, "message": "disk /dev/sda"},
        )
        assert resp.status == 200
    homes = [e for e in events if isinstance(e, PhoneHomeEvent)]
    assert homes == [PhoneHomeEvent(kind=kind, mac=KNOWN_MAC, ts=NOW, message="disk /dev/sda")]


@pytest.mark.parametrize(
    ("token", "body", "status", "says"),
    [
        ("bad", b'{"event": "installed"}', 403, "invalid token"),
        (None, b'{"event": "installed"}', 403, "invalid token"),
        ("ignition", b'{"event": "installed"}', 403, "invalid token"),
        ("good", b"{not json", 400, "not JSON"),
        ("good", b"\xff\xfe", 400, "not JSON"),
        ("good", b"[1, 2]", 400, "must be a JSON object"),
        ("good", b'{"event": "rebooted"}', 400, "unknown event 'rebooted'"),
        ("good", b'{"event": "installed", "message": 5}', 400, "message must be a string"),
    ],
)
async def test_phone_home_refusals(
    tmp_path: Path, token: str | None, body: bytes, status: int, says: str
) -> None:
    events: list[Event] = []
    params = {"mac": KNOWN_MAC}
    if token is not None:
        params["token"] = {"good": events_token(), "ignition": ignition_token()}.get(token, token)
    async with web_client(tmp_path, events) as client:
        resp = await client.post("/api/v1/events", params=params, data=body)
        assert resp.status == status
        assert says in await resp.text()
    assert not [e for e in events if isinstance(e, PhoneHomeEvent)]


async def test_nodes_lists_what_the_callable_returns(tmp_path: Path) -> None:
    states: list[dict[str, Any]] = [{"node": "worker-aa0001", "state": "installing", "attempt": 1}]
    async with web_client(tmp_path, node_states=lambda: states) as client:
        resp = await client.get("/api/v1/nodes")
        assert resp.status == 200
        assert await resp.json() == states


async def test_healthz(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        resp = await client.get("/healthz")
        assert (resp.status, await resp.text()) == (200, "ok\n")


async def test_every_request_is_an_event_without_its_query(tmp_path: Path) -> None:
    events: list[Event] = []
    async with web_client(tmp_path, events) as client:
        await client.get("/ignition", params={"mac": KNOWN_MAC, "token": ignition_token()})
        await client.get("/nope")
    http = [e for e in events if isinstance(e, HttpEvent)]
    assert [(e.mac, e.path, e.status) for e in http] == [
        (KNOWN_MAC, "/ignition", 200),
        (None, "/nope", 404),
    ]
    assert http[0].bytes > 0
    assert all("token" not in json.dumps(e.to_dict()) for e in http)


async def test_metrics_count_requests_bytes_and_renders(tmp_path: Path) -> None:
    async with web_client(tmp_path) as client:
        await client.get("/ipxe", params={"mac": KNOWN_MAC})
        await client.get("/ipxe", params={"mac": UNKNOWN_MAC})
        text = await (await client.get("/metrics")).text()
    assert 'racker_http_requests_total{method="GET",route="/ipxe",status="200"} 1.0' in text
    assert 'racker_http_requests_total{method="GET",route="/ipxe",status="404"} 1.0' in text
    assert 'racker_http_sent_bytes_total{route="/ipxe"}' in text
    assert 'racker_http_render_seconds_count{kind="ipxe"} 2.0' in text


async def test_metrics_registry_can_carry_other_servers_collectors(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    Counter("racker_dhcp_packets", "DHCP packets", registry=registry).inc(3)
    async with web_client(tmp_path, registry=registry) as client:
        text = await (await client.get("/metrics")).text()
    assert "racker_dhcp_packets_total 3.0" in text
    assert "racker_http_requests_total" in text or "racker_http_requests" in text


async def test_ipxe_renders_are_reused_until_something_changes(tmp_path: Path) -> None:
    catalog = StandinCatalog()
    async with web_client(tmp_path, catalog=catalog) as client:
        texts = [
            await (await client.get("/ipxe", params=query)).text()
            for query in (
                {"mac": KNOWN_MAC},
                {"mac": KNOWN_MAC},  # same question: cached
                {"mac": OTHER_MAC},  # other node
                {"mac": KNOWN_MAC, "platform": "efi"},  # other facts
            )
        ]
    assert texts[0] == texts[1]
    assert OTHER_MAC in texts[2]
    assert [(kind, facts.mac) for kind, facts, _ in catalog.calls] == [
        ("ipxe", KNOWN_MAC),
        ("ipxe", OTHER_MAC),
        ("ipxe", KNOWN_MAC),
    ]


async def test_cached_ipxe_renders_afresh_when_state_or_token_expiry_changes(
    tmp_path: Path,
) -> None:
    catalog = StandinCatalog()
    installed = {"now": False}
    clock = {"now": NOW}

    def stateful_context_for(facts: NodeFacts) -> RenderContext:
        return dataclasses.replace(context_for(facts), installed=installed["now"])

    app = make_app(
        catalog,
        stateful_context_for,
        key=KEY,
        assets_dir=tmp_path,
        server_url="http://10.99.0.1:8080",
        clock=lambda: clock["now"],
    )
    async with TestClient(TestServer(app)) as client:

        async def ipxe() -> str:
            return await (await client.get("/ipxe", params={"mac": KNOWN_MAC})).text()

        first = await ipxe()
        assert await ipxe() == first  # cached
        installed["now"] = True  # the node's state changed: render again
        await ipxe()
        clock["now"] = NOW + 300  # the next expiry step: new tokens, render again
        later = await ipxe()
        assert await ipxe() == later  # cached again
    assert [ctx.installed for _, _, ctx in catalog.calls] == [False, True, True]
    assert first != later
    assert f"token={make_token(KEY, KNOWN_MAC, 'ignition', EXPIRES + 300)}" in later


def test_fast_http_events_equal_constructed_ones() -> None:
    fast = http_event(KNOWN_MAC, NOW, "10.99.0.64", "GET", "/ipxe", 200, 512, 0.001)
    built = HttpEvent(
        kind="request",
        mac=KNOWN_MAC,
        ts=NOW,
        peer="10.99.0.64",
        method="GET",
        path="/ipxe",
        status=200,
        bytes=512,
        duration=0.001,
    )
    assert fast == built
    assert fast.to_dict() == built.to_dict()
    assert set(vars(fast)) == {f.name for f in dataclasses.fields(HttpEvent)}
