"""iPXE scripts rendered ahead of the request (racker.web.ahead, through ``BootHttpServer``)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from racker.profiles import NodeFacts, RenderContext
from racker.web import make_app
from racker.web.ahead import render_nodes
from racker.web.server import SERVICE, BootHttpServer
from racker.web.tokens import make_token
from tests.unit.web.helpers import KEY, NOW
from tests.unit.web.standin import (
    KNOWN_MAC,
    NODES,
    OTHER_MAC,
    UNKNOWN_MAC,
    StandinCatalog,
    context_for,
)

SERVER = "http://10.99.0.1:8080"
# What iPXE sends after /boot.ipxe: every fact, the MAC as ${mac:hexhyp}.
QUERY = {"mac": "52-54-00-AA-00-01", "uuid": "u-1", "serial": "", "hostname": "",
         "platform": "efi", "buildarch": "x86_64"}  # fmt: skip


def app_for(
    catalog: StandinCatalog, tmp_path: Path, clock: dict[str, float], **options: Any
) -> Any:
    return make_app(
        catalog,
        context_for,
        key=KEY,
        assets_dir=tmp_path,
        server_url=SERVER,
        clock=lambda: clock["now"],
        **options,
    )


async def test_a_node_rendered_ahead_is_answered_without_rendering(tmp_path: Path) -> None:
    catalog, clock = StandinCatalog(ipxe_per_node=True), {"now": NOW}
    app = app_for(catalog, tmp_path, clock)
    svc = app[SERVICE]
    assert render_nodes(svc, [KNOWN_MAC, UNKNOWN_MAC]) == 1  # the unknown MAC does not match
    assert render_nodes(svc, [KNOWN_MAC]) == 0  # still current
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/ipxe", params=QUERY)
        ahead = await resp.text()
        assert resp.status == 200
        unknown = await client.get("/ipxe", params={"mac": UNKNOWN_MAC})
        assert unknown.status == 404  # rendered on request, with the reason
    assert [(kind, facts.mac) for kind, facts, _ in catalog.calls] == [
        ("ipxe", KNOWN_MAC),
        ("ipxe", UNKNOWN_MAC),  # render_nodes tried it
        ("ipxe", UNKNOWN_MAC),  # the request's
    ]
    # The same answer a server that renders on request gives.
    async with TestClient(TestServer(app_for(StandinCatalog(), tmp_path, clock))) as client:
        assert await (await client.get("/ipxe", params=QUERY)).text() == ahead
    expires = int(NOW) // 300 * 300 + 300 + 86400
    assert f"token={make_token(KEY, KNOWN_MAC, 'ignition', expires)}" in ahead


async def test_per_node_catalogs_share_one_entry_across_request_facts(tmp_path: Path) -> None:
    catalog, clock = StandinCatalog(ipxe_per_node=True), {"now": NOW}
    async with TestClient(TestServer(app_for(catalog, tmp_path, clock))) as client:
        for query in (QUERY, {**QUERY, "uuid": "u-2", "platform": "pcbios"}, {"mac": KNOWN_MAC}):
            assert (await client.get("/ipxe", params=query)).status == 200
    assert len(catalog.calls) == 1


async def test_new_tokens_and_a_changed_catalog_render_ahead_again(tmp_path: Path) -> None:
    catalog, clock = StandinCatalog(ipxe_per_node=True), {"now": NOW}
    svc = app_for(catalog, tmp_path, clock)[SERVICE]
    assert render_nodes(svc, [KNOWN_MAC, OTHER_MAC]) == 2
    clock["now"] = NOW + 300  # the next expiry step
    assert render_nodes(svc, [KNOWN_MAC, OTHER_MAC]) == 2
    assert render_nodes(svc, [KNOWN_MAC, OTHER_MAC]) == 0


async def test_rendered_ahead_still_obeys_bind_to_lease(tmp_path: Path) -> None:
    catalog, clock = StandinCatalog(ipxe_per_node=True), {"now": NOW}
    app = app_for(catalog, tmp_path, clock, bind_to_lease=True, address_of=lambda _m: "10.0.0.9")
    render_nodes(app[SERVICE], [KNOWN_MAC])
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/ipxe", params=QUERY)
        assert resp.status == 403
        assert "bind_to_lease" in await resp.text()


async def test_catalogs_that_read_the_request_are_not_rendered_ahead(tmp_path: Path) -> None:
    catalog, clock = StandinCatalog(ipxe_per_node=False), {"now": NOW}
    assert render_nodes(app_for(catalog, tmp_path, clock)[SERVICE], [KNOWN_MAC]) == 0
    assert catalog.calls == []


async def test_the_server_renders_its_inventory_ahead_and_again_on_request(
    tmp_path: Path,
) -> None:
    catalog, inventory = StandinCatalog(ipxe_per_node=True), [KNOWN_MAC]
    server = BootHttpServer(
        "127.0.0.1",
        0,
        catalog,
        context_for,
        key=KEY,
        assets_dir=tmp_path,
        server_url=SERVER,
        inventory=lambda: list(inventory),
    )
    await server.start()
    try:
        svc = server.app[SERVICE]
        assert [mac for mac, _ in svc.ipxe_ahead] == [KNOWN_MAC]  # done by start()
        inventory[:] = [OTHER_MAC]  # a reload changed the inventory
        server.render_again()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if [mac for mac, _ in svc.ipxe_ahead] == [OTHER_MAC]:
                break
        assert [mac for mac, _ in svc.ipxe_ahead] == [OTHER_MAC]
    finally:
        await server.close()
    assert server._ahead is None


async def test_reload_answers_from_the_new_catalog_and_renders_it_ahead(tmp_path: Path) -> None:
    old, new = StandinCatalog(ipxe_per_node=True), StandinCatalog(ipxe_per_node=True)
    server = BootHttpServer(
        "127.0.0.1", 0, old, context_for, key=KEY, assets_dir=tmp_path, server_url=SERVER,
        inventory=lambda: [KNOWN_MAC],
    )  # fmt: skip
    await server.start()
    try:
        svc = server.app[SERVICE]
        svc.ipxe_answer(svc.ask(make_mocked_request("GET", "/ipxe?mac=52:54:00:aa:00:02")))
        assert [mac for mac, _ in svc.ipxe_ahead] == [KNOWN_MAC]
        assert [mac for mac, _ in svc.ipxe_cache] == [OTHER_MAC]  # rendered on request
        server.reload(new)
        assert svc.catalog is new and not svc.ipxe_cache and not svc.ipxe_ahead
        for _ in range(200):
            await asyncio.sleep(0.01)
            if svc.ipxe_ahead:
                break
        assert [mac for mac, _ in svc.ipxe_ahead] == [KNOWN_MAC]
        assert [facts.mac for _, facts, _ in new.calls] == [KNOWN_MAC]  # from the new one
        assert len(old.calls) == 2
    finally:
        await server.close()


async def test_the_refresh_renders_in_chunks_letting_the_loop_run_between(
    tmp_path: Path,
) -> None:
    nodes = {f"52:54:00:cc:00:{i:02x}": i for i in range(120)}

    def any_node_context(facts: NodeFacts) -> RenderContext:
        known = NODES[KNOWN_MAC]
        node = dataclasses.replace(known, primary_mac=facts.mac) if facts.mac in nodes else None
        return dataclasses.replace(context_for(facts), node=node)

    clock = {"now": NOW}
    server = BootHttpServer(
        "127.0.0.1",
        0,
        StandinCatalog(ipxe_per_node=True),
        any_node_context,
        key=KEY,
        assets_dir=tmp_path,
        server_url=SERVER,
        clock=lambda: clock["now"],
        inventory=lambda: list(nodes),
    )
    await server.start()
    try:
        svc = server.app[SERVICE]
        assert len(svc.ipxe_ahead) == 120
        clock["now"] = NOW + 300  # new tokens: everything renders again
        server.render_again()
        renewed = []
        for _ in range(100):
            await asyncio.sleep(0)
            count = sum(e.expires == svc.token_expiry() for e in svc.ipxe_ahead.values())
            if not renewed or renewed[-1] != count:
                renewed.append(count)
            if count == 120:
                break
        assert {50, 100} <= set(renewed) and renewed[-1] == 120  # the loop ran in between
    finally:
        await server.close()


async def test_a_state_change_renders_once_on_request_then_answers_from_memory(
    tmp_path: Path,
) -> None:
    catalog, installed = StandinCatalog(ipxe_per_node=True), {"now": False}

    def stateful(facts: NodeFacts) -> RenderContext:
        return dataclasses.replace(context_for(facts), installed=installed["now"])

    app = make_app(catalog, stateful, key=KEY, assets_dir=tmp_path, server_url=SERVER,
                   clock=lambda: NOW)  # fmt: skip
    render_nodes(app[SERVICE], [KNOWN_MAC])
    async with TestClient(TestServer(app)) as client:
        installed["now"] = True  # e.g. the node reported "installed"
        for _ in range(3):
            assert (await client.get("/ipxe", params=QUERY)).status == 200
    assert [ctx.installed for _, _, ctx in catalog.calls] == [False, True]
