"""The rack page of a real `racker serve`, in a real browser (headless Chromium over CDP).

``racker serve`` runs in the management namespace; Chromium runs in the node's namespace on
the same link, like an operator's browser on the rack network. The page is opened once and
never reloaded while a real ``racker bootstrap`` (fake power driver, following the serve) takes
a node from power-cycled through dhcp-seen to installing on the requests of real clients
(udhcpc with the node's MAC, curl for its iPXE script, Ignition and phone-home), and another
node's failure is written to the store: each shows up in the page. The DOM never holds a
token, the BMC password or any of the node's Ignition config. A screenshot is saved (its
path is printed).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from racker.events import NodeStateEvent
from racker.model import NodeState
from racker.rack.oem import Secret, write_credentials
from racker.store import Store
from tests.support import chromium
from tests.support.netns import Link
from tests.support.serving import (
    NODE_MAC,
    PXE_BIOS,
    RACKER,
    Serve,
    prepare_rack,
    segment,
    udhcpc,
)

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not chromium.available(), reason="chromium is not installed"),
]

BMC_PASSWORD = "Bmc-pass-7f3e91c2"  # noqa: S105 - the test's own, looked for in the DOM
PAGE = "http://10.99.0.1:8080"
ROW = f"document.querySelector('tr[data-mac=\"{NODE_MAC}\"]')"
OTHER_MAC = "52:54:00:99:00:20"  # another node of the example rack


@pytest.fixture
def rack(tmp_path: Path) -> Path:
    made = prepare_rack(tmp_path)
    write_credentials(made / "oem", "admin", Secret(BMC_PASSWORD))
    return made


@pytest.fixture
def net() -> Iterator[Link]:
    with segment() as made:
        yield made


def curl(net: Link, *args: str) -> str:
    return net.client.run("curl", "-sS", "-f", *args).stdout


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def decoded(config: dict[str, Any]) -> Iterator[str]:
    """The text of the config's files given as base64 data URLs."""
    for text in strings(config):
        if text.startswith("data:;base64,"):
            yield base64.b64decode(text.removeprefix("data:;base64,")).decode(errors="replace")


def bootstrap_moves(rack: Path, mac: str, name: str, new: str, reason: str = "") -> None:
    """What ``racker bootstrap`` writes when it moves a node (orchestrator ``_save``)."""
    now = time.time()
    with Store(rack / "state" / "racker.db") as store:
        store.set_node_state(NodeState(mac, new, now, 1, reason, {"role": "worker"}))
        store.append_events(
            [NodeStateEvent("transition", mac, now, node=name, old="", new=new, reason=reason)]
        )


def test_the_rack_page_follows_a_node_live_and_shows_no_secret(
    net: Link, rack: Path, tmp_path: Path
) -> None:
    serve = Serve(net, rack)
    bootstrap: subprocess.Popen[bytes] | None = None
    try:
        # The browser's address: the node's reservation (udhcpc below configures nothing).
        net.client.run("ip", "addr", "add", "10.99.0.65/24", "dev", net.cli_if)
        with chromium.Chromium(tmp_path / "chromium", net.client.name) as browser:
            browser.navigate(f"{PAGE}/")
            browser.wait_for(f"{ROW} !== null && document.querySelector('.live.on') !== null")
            browser.evaluate("window.openedOnce = true")
            assert browser.evaluate(f"{ROW}.dataset.state") == "unknown"
            assert browser.evaluate(f"{ROW}.querySelector('[data-col=power]').textContent") == (
                "unknown"
            )

            # A real racker bootstrap (fake power driver) follows the serve and power-cycles
            # the node into PXE: its states, written by that process, show without a reload.
            with (tmp_path / "bootstrap.log").open("wb") as log:
                bootstrap = net.server.popen(
                    [RACKER, "bootstrap", "--driver", "fake", "--nodes", NODE_MAC, "--json",
                     "--on-failure", "cancel", "--stagger", "0", "--oem-dir",
                     str(rack / "oem"), "--state-dir", str(rack / "state")],
                    stdout=log, stderr=subprocess.STDOUT,
                )  # fmt: skip
            browser.wait_for(f"{ROW}.dataset.state === 'power-cycled'")
            # The node's firmware asks for an address (a real DHCP client with its MAC).
            udhcpc(net, rack, *PXE_BIOS)
            browser.wait_for(f"{ROW}.dataset.state === 'dhcp-seen'")
            assert browser.evaluate(f"{ROW}.querySelector('[data-col=power]').textContent") == "on"

            # A real client asks for its iPXE script and its Ignition, with their tokens.
            script = curl(net, f"{PAGE}/ipxe?mac={NODE_MAC.replace(':', '-')}")
            tokens = set(re.findall(r"token=([A-Za-z0-9._-]+)", script))
            assert tokens, script
            ignition_url = re.search(r"ignition\.config\.url=(\S+)", script)
            assert ignition_url is not None, script
            browser.wait_for(f"{ROW}.dataset.state === 'script-fetched'")
            ignition = curl(net, ignition_url.group(1))
            config = json.loads(ignition)
            files = "\n".join(decoded(config))  # install.sh holds the phone-home URL
            tokens |= set(re.findall(r"token=([A-Za-z0-9._-]+)", ignition + files))
            # The installer's phone-home, with a URL holding a token in its message.
            events_url = re.search(r"(http://[^'\"\s]*/api/v1/events\?[^'\"\s]+)", files)
            assert events_url is not None, files
            body = json.dumps({"event": "install-started", "message": f"from {ignition_url[1]}"})
            curl(net, "-X", "POST", "-H", "Content-Type: application/json", "-d", body,
                 events_url.group(1))  # fmt: skip
            browser.wait_for(f"{ROW}.dataset.state === 'installing'")

            # Another node failed (written as racker bootstrap writes it): a warning.
            bootstrap_moves(rack, OTHER_MAC, "red-990020", "failed", "no DHCP in 300 s")
            browser.wait_for("document.querySelector('#warnings li[data-kind=failed]') !== null")
            assert browser.evaluate("window.openedOnce") is True  # never reloaded
            stats = browser.evaluate("window.rackStats")
            assert stats["snapshots"] == 1 and stats["rowUpdates"] >= 5, stats

            # The node's timeline (click its row).
            browser.evaluate(f"{ROW}.click()")
            browser.wait_for("document.querySelectorAll('#timeline-events li').length > 3")
            timeline = browser.evaluate("document.getElementById('timeline-events').textContent")
            assert "install-started" in timeline and "/ignition" in timeline

            dom = browser.dom()
            page_json = curl(net, f"{PAGE}/api/v1/rack")
            shot = browser.screenshot(tmp_path / "rack-page.png")
            print(f"rack page screenshot: {shot}")
    finally:
        if bootstrap is not None:
            bootstrap.terminate()
            bootstrap.wait(30)
        assert serve.stop() == 0
    for text in (dom, page_json):
        for token in tokens:
            assert token not in text
        assert not re.search(r"token=(?!<redacted>)[A-Za-z0-9]", text)
        assert BMC_PASSWORD not in text
        leaked = [s for s in strings(config) if len(s) >= 12 and s in text]
        assert not leaked, leaked
    # The phone-home message's URL is shown, its token blanked (HTML-escaped in the DOM).
    assert "token=&lt;redacted&gt;" in dom
    assert shot.stat().st_size > 10_000
    assert "Traceback" not in serve.log.read_text()


def test_the_rack_page_warns_of_a_rogue_dhcp_server_live(tmp_path: Path) -> None:
    # The rogue segment and dnsmasq of the serve's own rogue test: a real stray DHCP server.
    from tests.integration.serve.test_rogue_dhcp import (
        CONFIG,
        ROGUE_IP,
        ROGUE_MAC,
        broadcast_dhcp,
        dnsmasq,
        rogue_segment,
    )

    rack = prepare_rack(tmp_path)
    (rack / "racker.yaml").write_text(CONFIG)
    rogue_item = "document.querySelector('#warnings li[data-kind=\"rogue-dhcp\"]')"
    with rogue_segment() as (net, rogue):
        serve = Serve(net, rack, rack / "racker.yaml")
        try:
            net.client.run("ip", "addr", "add", "10.99.0.65/24", "dev", "br0")
            with chromium.Chromium(tmp_path / "chromium", net.client.name) as browser:
                browser.navigate(f"{PAGE}/")
                browser.wait_for("document.querySelector('.live.on') !== null")
                browser.evaluate("window.openedOnce = true")
                assert browser.evaluate(f"{rogue_item} === null") is True
                with dnsmasq(rogue, tmp_path):
                    for _ in range(3):  # each DISCOVER: dnsmasq's OFFER, broadcast
                        broadcast_dhcp(net, rack)
                    text = browser.wait_for(f"{rogue_item} && {rogue_item}.textContent")
                assert ROGUE_IP in text and ROGUE_MAC in text, text
                assert browser.evaluate("window.openedOnce") is True  # never reloaded
                shot = browser.screenshot(tmp_path / "rack-page-rogue.png", full_page=False)
                print(f"rack page screenshot: {shot}")
        finally:
            assert serve.stop() == 0
