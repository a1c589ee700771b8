"""The server with the real built-in catalog: the two halves of issue 5 fit together.

/ipxe hands out an Ignition URL whose token opens /ignition, and what comes back is an
Ignition config the profiles' own checker accepts.
"""

from __future__ import annotations

import re
from pathlib import Path

from racker.model import Node
from racker.profiles import (
    NodeFacts,
    RenderContext,
    RenderSettings,
    check_ignition,
    load_catalog,
)
from racker.web.tokens import check_token
from tests.unit.web.helpers import KEY, NOW, web_client

MAC = "52:54:00:aa:00:01"
SETTINGS = RenderSettings(ssh_authorized_keys=("ssh-ed25519 AAAAC3Nza test@racker",))
NODE = Node(2, 1, MAC, "52:54:00:bb:00:01", None, "worker")


def context_for(facts: NodeFacts) -> RenderContext:
    node = NODE if facts.mac == MAC else None
    return RenderContext(
        node=node,
        role="worker",
        installed=False,
        address="10.99.0.64" if node else None,
        server_url="",
        ignition_url="",
        events_url="",
        assets_url="",
        settings=SETTINGS,
    )


async def test_ipxe_token_opens_a_valid_ignition(tmp_path: Path) -> None:
    catalog = load_catalog(None, SETTINGS)
    async with web_client(tmp_path, catalog=catalog) as client:
        resp = await client.get("/ipxe", params={"mac": MAC, "platform": "efi"})
        assert resp.status == 200, await resp.text()
        script = await resp.text()
        assert script.startswith("#!ipxe")
        found = re.search(
            r"http://10\.99\.0\.1:8080/ignition\?mac=([0-9a-f:]+)&token=([\w.-]+)", script
        )
        assert found is not None, script
        assert found.group(1) == MAC
        assert check_token(KEY, found.group(2), MAC, "ignition", NOW)
        ign = await client.get("/ignition", params={"mac": MAC, "token": found.group(2)})
        assert ign.status == 200
        config = await ign.json(content_type=None)
    assert check_ignition(config) == []
    assert config["ignition"]["version"].startswith("3.")
