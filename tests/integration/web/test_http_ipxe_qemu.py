"""Real iPXE (Debian's ipxe.lkrn in QEMU) runs /boot.ipxe and rides out failed fetches.

The machine is unknown at first, so /ipxe answers 404; the first stage must retry with its
back-off instead of giving up. Once the test "adds the node", the next retry gets the node's
script. Also checks what iPXE really sends: ``${mac:hexhyp}``, SMBIOS uuid, a serial number
with a space (``:uristring``), ``${platform}`` and ``${buildarch}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest

from racker.events import Event, HttpEvent
from racker.profiles import NodeFacts, NoMatch, RenderContext
from racker.web import BootHttpServer
from tests.support.netns import entered, link, sh
from tests.unit.web.helpers import KEY
from tests.unit.web.standin import KNOWN_MAC, StandinRendered, context_for

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
    pytest.mark.skipif(not Path("/usr/lib/ipxe/ipxe.lkrn").exists(), reason="needs ipxe"),
]

UUID = "11111111-2222-3333-4444-555555555555"
MARKER = "racker-test: node script reached"
# ipxe.lkrn runs an initrd as its script: static address (no DHCP server on this link).
FIRST = """#!ipxe
ifopen net0
set net0/ip 10.99.0.64
set net0/netmask 255.255.255.0
chain http://10.99.0.1:8080/boot.ipxe
"""


class FlakyCatalog:
    """No group matches until ``known`` is set: what a machine missing from nodes.csv sees."""

    ipxe_reads_request = "every fact, recorded"  # render each request

    def __init__(self) -> None:
        self.known = False
        self.facts: list[NodeFacts] = []

    def render_ipxe(self, facts: NodeFacts, ctx: RenderContext) -> StandinRendered:
        self.facts.append(facts)
        if not self.known:
            raise NoMatch("not in the inventory yet")
        return StandinRendered(f"#!ipxe\necho {MARKER}\nsleep 600\n")

    def render_ignition(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        raise NoMatch("unused")

    def render_metadata(self, facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
        raise NoMatch("unused")


async def test_ipxe_retries_until_its_script_is_served(tmp_path: Path) -> None:
    script = tmp_path / "first.ipxe"
    script.write_text(FIRST)
    catalog = FlakyCatalog()
    events: list[Event] = []
    with link(server_ip="10.99.0.1", client_mac="52:54:00:aa:00:fd") as lk:
        cli = lk.client.name
        # The VM's tap and the veth end share a bridge in the client namespace.
        sh("ip", "-n", cli, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", cli, "link", "set", "eth0", "master", "br0")
        sh("ip", "-n", cli, "tuntap", "add", "tap0", "mode", "tap")
        sh("ip", "-n", cli, "link", "set", "tap0", "master", "br0")
        for dev in ("br0", "tap0"):
            sh("ip", "-n", cli, "link", "set", dev, "up")
        with entered(lk.server.name):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("10.99.0.1", 8080))
        server = BootHttpServer(
            "10.99.0.1",
            8080,
            catalog,
            context_for,
            sock=sock,
            key=KEY,
            assets_dir=tmp_path,
            publish=events.append,
        )
        await server.start()
        qemu = await asyncio.create_subprocess_exec(
            "ip",
            "netns",
            "exec",
            cli,
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "256",
            "-nographic",
            "-nodefaults",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            "-uuid",
            UUID,
            "-smbios",
            "type=1,serial=RACK 42",
            "-kernel",
            "/usr/lib/ipxe/ipxe.lkrn",
            "-initrd",
            str(script),
            "-netdev",
            "tap,id=n0,ifname=tap0,script=no,downscript=no",
            "-device",
            f"e1000,netdev=n0,mac={KNOWN_MAC}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = ""  # iPXE draws with \r and escape codes: read chunks, not lines
        try:
            async with asyncio.timeout(120):
                assert qemu.stdout is not None
                while MARKER not in output.replace(f"echo {MARKER}", ""):
                    chunk = await qemu.stdout.read(4096)
                    if not chunk:
                        break
                    output += chunk.decode(errors="replace")
                    if "racker: fetching" in output:
                        catalog.known = True  # the operator adds the node; next retry wins
        except TimeoutError:
            pytest.fail(f"iPXE never reached the node script; console:\n{output[-3000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                qemu.kill()
            await qemu.wait()
            await server.close()
    assert MARKER in output, output[-3000:]
    assert "retry in 1 s" in output
    requests = [(e.path, e.status) for e in events if isinstance(e, HttpEvent)]
    assert requests[0] == ("/boot.ipxe", 200)
    assert ("/ipxe", 404) in requests
    assert requests[-1] == ("/ipxe", 200)
    facts = catalog.facts[-1]
    assert facts.mac == KNOWN_MAC  # ${mac:hexhyp} parsed
    assert facts.uuid == UUID
    assert facts.serial == "RACK 42"  # ${serial:uristring} survived the space
    assert (facts.platform, facts.buildarch) == ("pcbios", "i386")
