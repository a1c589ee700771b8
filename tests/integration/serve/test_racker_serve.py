"""`racker serve` as users run it: one process, real clients on the rack's L2 segment.

The management side (namespace ``net.server``) carries the example rack's PXE MAC, so racker
finds its interface from the OEM files alone; the client namespace plays a server of the rack
whose primary MAC is in nodes.csv.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.netns import Link, link
from tests.support.serving import (
    NODE_MAC,
    PXE_BIOS,
    RACKER,
    Serve,
    prepare_rack,
    segment,
    udhcpc,
)

pytestmark = [pytest.mark.root, pytest.mark.slow]


@pytest.fixture
def rack(tmp_path: Path) -> Path:
    return prepare_rack(tmp_path)


@pytest.fixture
def net() -> Iterator[Link]:
    with segment() as made:
        yield made


def test_a_node_boots_through_dhcp_tftp_and_http(net: Link, rack: Path) -> None:
    serve = Serve(net, rack)
    try:
        bios = udhcpc(net, rack, *PXE_BIOS)
        assert bios["ip"] == "10.99.0.65"  # the second row's reserved address (.64 is mgmt)
        assert bios["serverid"] == "10.99.0.1"
        assert bios["boot_file"] == "undionly.kpxe"
        # The loader by TFTP, byte for byte.
        out = rack / "undionly.kpxe"
        net.client.run("ip", "addr", "add", "10.99.0.65/24", "dev", net.cli_if)
        net.client.run("curl", "-sS", "-o", str(out), "tftp://10.99.0.1/undionly.kpxe")
        assert out.read_bytes() == Path("/usr/lib/ipxe/undionly.kpxe").read_bytes()
        # UEFI's loader too: Debian ships /usr/lib/ipxe/ipxe.efi as a link to /boot/ipxe.efi.
        efi = rack / "ipxe.efi"
        net.client.run("curl", "-sS", "-o", str(efi), "tftp://10.99.0.1/ipxe.efi")
        assert efi.read_bytes() == Path("/usr/lib/ipxe/ipxe.efi").read_bytes()
        # iPXE then asks again and gets the HTTP script, which chains to its own script.
        ipxe = udhcpc(net, rack, "-x", "77:" + b"iPXE".hex())
        assert ipxe["boot_file"] == "http://10.99.0.1:8080/boot.ipxe"
        script = net.client.run("curl", "-sS", "-f", ipxe["boot_file"]).stdout
        assert script.startswith("#!ipxe")
        # Every inventory node's script was rendered ahead, at start: asking renders nothing.
        rows = (rack / "oem" / "nodes.csv").read_text().splitlines()[1:]  # after the header
        nodes = sum(1 for row in rows if row.strip() and not row.startswith("#"))
        assert ipxe_renders(net) == nodes
        node = net.client.run(
            "curl", "-sS", "-f", f"http://10.99.0.1:8080/ipxe?mac={NODE_MAC.replace(':', '-')}"
        ).stdout
        assert ipxe_renders(net) == nodes
        assert "flatcar.first_boot=yes" in node
        assert f"ignition.config.url=http://10.99.0.1:8080/ignition?mac={NODE_MAC}&token=" in node
        # By default (http.bind_to_lease) a machine gets only its own node's script and tokens.
        other = net.client.run(
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "http://10.99.0.1:8080/ipxe?mac=52-54-00-99-00-20",
        ).stdout
        assert other == "403"
    finally:
        assert serve.stop() == 0
    log = serve.log.read_text()
    assert "Traceback" not in log
    assert f"HTTP: iPXE scripts of {nodes} nodes rendered ahead in" in log
    # -v: one line per DHCP answer (the hub writes them from the events).
    assert f"DHCP ACK 10.99.0.65 to {NODE_MAC} (bios), boot undionly.kpxe" in log, log
    assert f"DHCP ACK 10.99.0.65 to {NODE_MAC} (ipxe), boot http://10.99.0.1:8080/boot.ipxe" in log
    events = (
        sqlite3.connect(rack / "state" / "racker.db")
        .execute("SELECT source, kind FROM events WHERE mac = ?", (NODE_MAC,))
        .fetchall()
    )
    sources = {source for source, _ in events}
    assert {"dhcp", "tftp", "http"} <= sources, events


def ipxe_renders(net: Link) -> int:
    metrics = net.client.run("curl", "-sS", "-f", "http://10.99.0.1:8080/metrics").stdout
    found = re.search(r'^racker_http_render_seconds_count\{kind="ipxe"\} (\S+)$', metrics, re.M)
    return int(float(found.group(1))) if found else 0


def test_leases_survive_a_restart(net: Link, rack: Path) -> None:
    serve = Serve(net, rack)
    try:
        first = udhcpc(net, rack)
    finally:
        assert serve.stop() == 0
    db = sqlite3.connect(rack / "state" / "racker.db")
    assert db.execute(
        "SELECT address, state FROM leases WHERE mac = ?", (NODE_MAC,)
    ).fetchall() == [(first["ip"], "bound")]
    serve = Serve(net, rack)
    try:
        # INIT-REBOOT: ask for the old address straight away (udhcpc -r), get it ACKed.
        again = udhcpc(net, rack, "-r", first["ip"])
        assert again["ip"] == first["ip"]
    finally:
        assert serve.stop() == 0


def test_serve_without_root_privileges_fails_with_a_clear_error(net: Link, rack: Path) -> None:
    # Everything readable by "nobody", so the first thing that fails is opening the sockets.
    public = Path(tempfile.mkdtemp(prefix="racker-nobody-"))
    try:
        shutil.copytree(rack / "oem", public / "oem")
        for path in [public, *public.rglob("*")]:
            shutil.chown(path, 65534, 65534)
        public.chmod(0o755)
        result = net.server.run(
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            RACKER,
            "serve",
            "--oem-dir",
            str(public / "oem"),
            "--state-dir",
            str(public / "state"),
            check=False,
        )
    finally:
        shutil.rmtree(public)
    assert result.returncode == 4, result.stderr
    first, _, rest = result.stderr.partition("\n")
    assert first.startswith("error: DHCP"), result.stderr
    assert "hint:" in rest
    assert "Traceback" not in result.stderr


def test_a_bare_pxe_nic_gets_racker_s_address_and_serves(rack: Path) -> None:
    """A fresh management node: the PXE NIC has no address, racker.yaml sets none. racker
    serve adds the default subnet's first host, logs it, and a node gets a lease and script."""
    with link(server_ip="", server_mac="52:54:00:99:02:01", client_mac=NODE_MAC) as bare:
        serve = Serve(bare, rack)
        try:
            added = bare.server.run("ip", "-4", "-o", "addr", "show", "dev", bare.srv_if).stdout
            assert "172.24.213.1/24" in added
            lease = udhcpc(bare, rack)
            assert lease["ip"] == "172.24.213.65"  # the second row's reserved address
            assert lease["serverid"] == "172.24.213.1"
            bare.client.run("ip", "addr", "add", f"{lease['ip']}/24", "dev", bare.cli_if)
            script = bare.client.run(
                "curl", "-sS", "-f", "http://172.24.213.1:8080/boot.ipxe"
            ).stdout
            assert script.startswith("#!ipxe")
        finally:
            assert serve.stop() == 0
        # The address stays when racker stops.
        after = bare.server.run("ip", "-4", "-o", "addr", "show", "dev", bare.srv_if).stdout
        assert "172.24.213.1/24" in after
    log = serve.log.read_text()
    assert "the PXE interface pxe0 had no IPv4 address: added 172.24.213.1/24" in log


PXE_UEFI = ["-x", "0x3c:" + b"PXEClient:Arch:00007:UNDI:003000".hex(), "-x", "93:0007"]
HTTP_UEFI = ["-x", "0x3c:" + b"HTTPClient:Arch:00016:UNDI:003000".hex(), "-x", "93:0010"]


def test_uefi_http_boot_gets_a_url_that_serves_the_loader(net: Link, rack: Path) -> None:
    """boot.uefi_http: UEFI PXE gets no boot file; UEFI HTTP Boot a URL, which serves the
    loader TFTP would have sent, byte for byte (EDK2 sends HEAD first, then GET)."""
    config = rack / "racker.yaml"
    config.write_text("boot:\n  uefi_http: true\n")
    serve = Serve(net, rack, config)
    try:
        pxe = udhcpc(net, rack, *PXE_UEFI)
        assert pxe["ip"] == "10.99.0.65"
        assert pxe["boot_file"] == ""  # so that the firmware falls through to HTTP boot
        http = udhcpc(net, rack, *HTTP_UEFI)
        assert http["boot_file"] == "http://10.99.0.1:8080/ipxe.efi"
        net.client.run("ip", "addr", "add", "10.99.0.65/24", "dev", net.cli_if)
        loader = Path("/usr/lib/ipxe/ipxe.efi").read_bytes()
        head = net.client.run("curl", "-sS", "-f", "-I", http["boot_file"]).stdout
        assert f"Content-Length: {len(loader)}" in head, head
        out = rack / "ipxe.efi"
        net.client.run("curl", "-sS", "-f", "-o", str(out), http["boot_file"])
        assert out.read_bytes() == loader
        missing = net.client.run(
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://10.99.0.1:8080/nope.efi"
        ).stdout
        assert missing == "404"
    finally:
        assert serve.stop() == 0
    log = serve.log.read_text()
    assert "Traceback" not in log
    assert (
        f"DHCP ACK 10.99.0.65 to {NODE_MAC} (uefi-http), boot http://10.99.0.1:8080/ipxe.efi" in log
    )
