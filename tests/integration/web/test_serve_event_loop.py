"""`racker serve` on asyncio's own loop (the default) and on uvloop (the opt-in
``RACKER_EVENT_LOOP=uvloop``): the same node boot works on both. The DHCP server
reads an AF_PACKET socket through ``loop.add_reader``, TFTP sessions their own sockets the same
way, HTTP is aiohttp on the loop's transports, and the RA responder starts with them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Link
from tests.support.serving import NODE_MAC, PXE_BIOS, Serve, prepare_rack, segment, udhcpc

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def rack_dir(tmp_path: Path) -> Path:
    return prepare_rack(tmp_path)


@pytest.fixture
def lan() -> Iterator[Link]:
    with segment() as made:
        yield made


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_node_boots_on_either_event_loop(
    loop: str, lan: Link, rack_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RACKER_EVENT_LOOP", loop)  # inherited by the racker process
    serve = Serve(lan, rack_dir)
    try:
        lease = udhcpc(lan, rack_dir, *PXE_BIOS)
        assert (lease["ip"], lease["boot_file"]) == ("10.99.0.65", "undionly.kpxe")
        lan.client.run("ip", "addr", "add", "10.99.0.65/24", "dev", lan.cli_if)
        loader = rack_dir / "undionly.kpxe"
        lan.client.run("curl", "-sS", "-o", str(loader), "tftp://10.99.0.1/undionly.kpxe")
        assert loader.read_bytes() == Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()
        url = f"http://10.99.0.1:8080/ipxe?mac={NODE_MAC}"
        scripts = [lan.client.run("curl", "-sS", "-f", url).stdout for _ in range(2)]
        assert "flatcar.first_boot=yes" in scripts[0]
        assert scripts[1] == scripts[0]  # the second answer comes from the render cache
    finally:
        assert serve.stop() == 0
    log = serve.log.read_text()
    assert f"event loop: {loop}" in log
    assert "Traceback" not in log
