"""Network boot: which file each kind of firmware gets, checked with synthetic requests and
with the real firmware captures in fixtures/dhcp (see shared/fixtures/firmware/README.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP

from racker.dhcp.boot import classify
from racker.dhcp.codec import decode
from racker.dhcp.core import build_core
from racker.dhcp.settings import DhcpSettings, core_settings
from racker.model import bytes_to_mac
from tests.unit.dhcp.corekit import (
    IP,
    NODE_MAC,
    PLAN,
    SERVER,
    UNKNOWN_MAC,
    config,
    feed,
    ip,
    make_core,
    reply_of,
    request,
)
from tests.unit.dhcp.helpers import client_payloads, scapy_header, scapy_options, server_payloads

SCRIPT = "http://10.99.0.1:8080/boot.ipxe"
HTTP_EFI = "http://10.99.0.1:8080/ipxe.efi"
HTTP_ARM = "http://10.99.0.1:8080/arm64.efi"
IPXE_175 = bytes.fromhex("b105018086100eeb03010000170101220101130101110101")


def arch(*values: int) -> tuple[str, bytes]:
    return ("pxe_client_architecture", b"".join(v.to_bytes(2, "big") for v in values))


def vendor(text: str) -> tuple[str, bytes]:
    return ("vendor_class_id", text.encode())


BOOT_TABLE: list[tuple[str, list[Any], str | None, str | None, str]] = [
    # (case, options, arm64 loader, expected file, expected client kind)
    ("plain client", [], None, None, "os"),
    (
        "BIOS PXE",
        [arch(0), vendor("PXEClient:Arch:00000:UNDI:002001")],
        None,
        "undionly.kpxe",
        "bios",
    ),
    ("UEFI IA32", [arch(6)], None, "ipxe.efi", "uefi"),
    ("UEFI x64", [arch(7), vendor("PXEClient:Arch:00007:UNDI:003000")], None, "ipxe.efi", "uefi"),
    ("UEFI EBC (x64 in old OVMF)", [arch(9)], None, "ipxe.efi", "uefi"),
    ("arm64 without a loader", [arch(11)], None, None, "uefi"),
    ("arm64 with a loader", [arch(11)], "arm64.efi", "arm64.efi", "uefi"),
    ("arm64 listed first, x64 next", [arch(11, 7)], None, "ipxe.efi", "uefi"),
    ("unknown arch then BIOS", [arch(2, 0)], None, "undionly.kpxe", "uefi"),
    (
        "x64 HTTP boot",
        [arch(16), vendor("HTTPClient:Arch:00016:UNDI:003000")],
        None,
        HTTP_EFI,
        "uefi-http",
    ),
    ("x86 HTTP boot", [arch(15), vendor("HTTPClient:Arch:00015")], None, HTTP_EFI, "uefi-http"),
    (
        "arm64 HTTP boot",
        [arch(19), vendor("HTTPClient:Arch:00019")],
        "arm64.efi",
        HTTP_ARM,
        "uefi-http",
    ),
    ("arm64 HTTP boot, no loader", [arch(19), vendor("HTTPClient")], None, None, "uefi-http"),
    (
        "arch only in option 60",
        [vendor("PXEClient:Arch:00000:UNDI:002001")],
        None,
        "undionly.kpxe",
        "bios",
    ),
    ("arch 7 only in option 60", [vendor("PXEClient:Arch:00007")], None, "ipxe.efi", "uefi"),
    ("HTTP arch only in 60", [vendor("HTTPClient:Arch:00016")], None, HTTP_EFI, "uefi-http"),
    ("garbled arch in 60", [vendor("PXEClient:Arch:0x007")], None, None, "os"),
    ("iPXE by option 175", [arch(0), (175, IPXE_175)], None, SCRIPT, "ipxe"),
    ("iPXE raw user class", [arch(7), ("user_class", b"iPXE")], None, SCRIPT, "ipxe"),
    ("iPXE RFC 3004 user class", [("user_class", b"\x03abc\x04iPXE")], None, SCRIPT, "ipxe"),
    (
        "other RFC 3004 user class",
        [arch(0), ("user_class", b"\x04iPXF")],
        None,
        "undionly.kpxe",
        "bios",
    ),
    ("iPXE over HTTP arch", [arch(16), (175, IPXE_175)], None, SCRIPT, "ipxe"),
]


@pytest.mark.parametrize(
    ("options", "arm64", "expected", "kind"),
    [row[1:] for row in BOOT_TABLE],
    ids=[row[0] for row in BOOT_TABLE],
)
def test_boot_file_per_client(
    options: list[Any], arm64: str | None, expected: str | None, kind: str
) -> None:
    out = feed(make_core(arm64=arm64), request("discover", options=options))
    reply = reply_of(out)
    got = reply.options.get(67)
    assert (got.rstrip(b"\0").decode() if got else None) == expected
    assert out.events[0].client_kind == kind  # type: ignore[attr-defined]
    assert out.events[-1].boot_file == expected  # type: ignore[attr-defined]
    if expected is None:
        assert reply.siaddr == bytes(4)
        assert reply.file == b""
        return
    assert reply.file == expected.encode()  # BOOTP 'file' as well as option 67
    assert ip(reply.siaddr) == SERVER
    tftp = not expected.startswith("http://")
    assert (reply.options.get(66) == SERVER.encode()) is tftp
    http_boot = kind == "uefi-http"
    assert (reply.options.get(60) == b"HTTPClient") is http_boot


def test_disk_policy_gives_an_address_but_no_boot_file() -> None:
    out = feed(make_core(disk=True), request("discover", options=[arch(7)]))
    reply = reply_of(out)
    assert ip(reply.yiaddr) == "10.99.0.64"
    assert 67 not in reply.options
    assert reply.file == b""


UEFI_PXE = [arch(7), vendor("PXEClient:Arch:00007:UNDI:003000")]
UEFI_HTTP = [arch(16), vendor("HTTPClient:Arch:00016:UNDI:003000")]

UEFI_HTTP_TABLE: list[tuple[str, bool | list[str], str, list[Any], str | None]] = [
    # (case, boot.uefi_http, client MAC, options, expected file); NODE_MAC is a "worker"
    ("off: UEFI PXE gets the loader", False, NODE_MAC, UEFI_PXE, "ipxe.efi"),
    ("off: HTTP boot still answered", False, NODE_MAC, UEFI_HTTP, HTTP_EFI),
    ("on: UEFI PXE gets no file", True, NODE_MAC, UEFI_PXE, None),
    ("on: UEFI IA32 PXE gets no file", True, NODE_MAC, [arch(6)], None),
    ("on: arm64 PXE gets no file", True, NODE_MAC, [arch(11)], None),
    ("on: HTTP boot gets the URL", True, NODE_MAC, UEFI_HTTP, HTTP_EFI),
    ("on: BIOS PXE keeps TFTP", True, NODE_MAC, [arch(0)], "undionly.kpxe"),
    ("on: iPXE gets the script", True, NODE_MAC, [*UEFI_PXE, ("user_class", b"iPXE")], SCRIPT),
    ("on: an unknown MAC too", True, UNKNOWN_MAC, UEFI_PXE, None),
    ("its type: UEFI PXE gets no file", ["worker"], NODE_MAC, UEFI_PXE, None),
    ("its type: HTTP boot gets the URL", ["worker"], NODE_MAC, UEFI_HTTP, HTTP_EFI),
    ("another type: the loader", ["storage"], NODE_MAC, UEFI_PXE, "ipxe.efi"),
    ("a type: not an unknown MAC", ["worker"], UNKNOWN_MAC, UEFI_PXE, "ipxe.efi"),
]


@pytest.mark.parametrize(
    ("uefi_http", "mac", "options", "expected"),
    [row[1:] for row in UEFI_HTTP_TABLE],
    ids=[row[0] for row in UEFI_HTTP_TABLE],
)
def test_uefi_http_boot_leaves_uefi_pxe_without_a_file(
    uefi_http: bool | list[str], mac: str, options: list[Any], expected: str | None
) -> None:
    core = make_core("pool", arm64="arm64.efi", uefi_http=uefi_http)
    offer = reply_of(feed(core, request("discover", mac, options=options)))
    asked = [("requested_addr", ip(offer.yiaddr))]
    ack = reply_of(feed(core, request("request", mac, options=[*options, *asked])))
    for reply in (offer, ack):
        got = reply.options.get(67)
        assert (got.rstrip(b"\0").decode() if got else None) == expected
        assert reply.yiaddr != bytes(4)  # an address either way
        if expected is None:
            assert (reply.file, reply.siaddr, 66 in reply.options) == (b"", bytes(4), False)


# -- the real firmware captures -------------------------------------------------------------

CAPTURE_TABLE = [
    # capture, expected boot file for each DHCP stage (in order of xid), broadcast per stage
    ("seabios-ipxe-rom-e1000.pcap", [SCRIPT], [False]),
    ("ovmf-ipxe-rom-e1000.pcap", [SCRIPT], [False]),
    ("ovmf-native-pxe-virtio.pcap", ["ipxe.efi", SCRIPT], [True, False]),
    ("ovmf-httpboot-virtio.pcap", ["ipxe.efi", HTTP_EFI, SCRIPT], [True, True, False]),
    # Chainload: the ROM and undionly.kpxe send identical options. Both get the script, so
    # the loop cannot start (the only difference, the broadcast flag, decides nothing).
    ("ipxe-chainload-undionly.pcap", [SCRIPT, SCRIPT], [False, True]),
]


@pytest.mark.parametrize(("name", "files", "broadcast"), CAPTURE_TABLE)
def test_real_firmware_gets_the_right_boot_file(
    name: str, files: list[str], broadcast: list[bool]
) -> None:
    payloads = client_payloads(name)
    mac = bytes_to_mac(decode(payloads[0]).chaddr)
    # Reserve the address dnsmasq gave in the capture: the REQUESTs ask for it.
    address = ip(decode(server_payloads(name)[0]).yiaddr)
    core = build_core(DhcpSettings(core_settings(config(), PLAN, 8080), {mac: IP(address)}))
    stages: dict[int, tuple[str | None, bool]] = {}
    for payload in payloads:
        msg = decode(payload)
        out = feed(core, payload)
        reply = reply_of(out)  # every DISCOVER and REQUEST in the captures gets an answer
        assert reply.options[53] in (b"\x02", b"\x05")
        assert ip(reply.yiaddr) == address
        boot = reply.options.get(67)
        stages.setdefault(
            msg.xid, (boot.rstrip(b"\0").decode() if boot else None, out.destination.broadcast)
        )  # type: ignore[union-attr]
        # The reply decodes identically in scapy.
        assert scapy_options(out.reply) == reply.options  # type: ignore[arg-type]
        # OVMF ignores HTTP offers that do not echo "HTTPClient" (UEFI spec §24.7).
        http = msg.options.get(60, b"").startswith(b"HTTPClient")
        assert (reply.options.get(60) == b"HTTPClient") is http
    assert [s[0] for s in stages.values()] == files
    assert [s[1] for s in stages.values()] == broadcast


def test_capture_classification() -> None:
    seen = {}
    for name, *_ in CAPTURE_TABLE:
        for payload in client_payloads(name):
            info = classify(decode(payload).options)
            seen[(name, info.kind)] = info.arch
    assert seen[("seabios-ipxe-rom-e1000.pcap", "ipxe")] == 0
    assert seen[("ovmf-native-pxe-virtio.pcap", "uefi")] == 7
    assert seen[("ovmf-httpboot-virtio.pcap", "uefi-http")] == 16
    assert seen[("ipxe-chainload-undionly.pcap", "ipxe")] == 0
    assert ("ipxe-chainload-undionly.pcap", "bios") not in seen


# -- every reply the core builds decodes identically in scapy ------------------------------

OPTION_POOL = [
    ("param_req_list", st.lists(st.integers(1, 254), max_size=40)),
    ("max_dhcp_size", st.integers(0, 65535)),
    ("client_id", st.binary(min_size=2, max_size=30)),
    (
        "pxe_client_architecture",
        st.lists(st.integers(0, 20), min_size=1, max_size=3).map(
            lambda v: b"".join(x.to_bytes(2, "big") for x in v)
        ),
    ),
    (
        "vendor_class_id",
        st.sampled_from(
            [b"PXEClient:Arch:00000", b"HTTPClient:Arch:00016", b"udhcp 1.35", b"PXEClient"]
        ),
    ),
    ("user_class", st.sampled_from([b"iPXE", b"\x04iPXE", b"\x03abc"])),
    ("pxe_client_machine_identifier", st.binary(min_size=17, max_size=17)),
    ("relay_agent_information", st.binary(min_size=2, max_size=80)),
    ("hostname", st.binary(min_size=1, max_size=30)),
]


@st.composite
def client_requests(draw: st.DrawFn) -> tuple[bytes, str]:
    chosen = draw(st.lists(st.sampled_from(range(len(OPTION_POOL))), unique=True))
    options = [(OPTION_POOL[i][0], draw(OPTION_POOL[i][1])) for i in chosen]
    mtype = draw(st.sampled_from(["discover", "request", "inform"]))
    if mtype == "request":
        options.append(
            ("requested_addr", draw(st.sampled_from(["10.99.0.64", "10.99.0.200", "10.98.1.3"])))
        )
    mac = draw(st.sampled_from([NODE_MAC, "52:54:00:cc:00:01"]))
    kwargs = {
        "flags": draw(st.sampled_from([0, 0x8000])),
        "giaddr": draw(st.sampled_from(["0.0.0.0", "10.98.0.2", "10.99.0.3"])),
        "ciaddr": "10.99.0.64" if mtype == "inform" else "0.0.0.0",
        "xid": draw(st.integers(0, 2**32 - 1)),
    }
    return request(mtype, mac, options, **kwargs), mac  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(client_requests(), st.sampled_from(["ignore", "pool"]), st.sampled_from([None, "arm64.efi"]))
def test_every_core_reply_decodes_identically_in_scapy(
    req: tuple[bytes, str], unknown: str, arm64: str | None
) -> None:
    data, _mac = req
    out = feed(make_core(unknown, arm64), data)
    if out.reply is None:
        return
    ours = decode(out.reply)
    assert scapy_options(out.reply) == ours.options
    assert list(scapy_options(out.reply)) == list(ours.options)
    ref = scapy_header(out.reply)
    assert ref["op"] == 2
    assert ref["xid"] == ours.xid == BOOTP(data).xid
    assert ref["yiaddr"] == ip(ours.yiaddr)
    assert ref["siaddr"] == ip(ours.siaddr)
    assert ref["giaddr"] == ip(ours.giaddr)
    assert ref["file"] == ours.file
    assert ref["chaddr"] == ours.chaddr
    assert len(out.reply) >= 300


def test_ovmf_set_to_boot_by_http_gets_no_pxe_file_then_the_url() -> None:
    """OVMF's capture 4, with boot.uefi_http: its PXE DISCOVERs get an address only (so it
    falls through), its HTTP boot the loader URL with 60 = HTTPClient, then iPXE the script."""
    name = "ovmf-httpboot-virtio.pcap"
    payloads = client_payloads(name)
    mac = bytes_to_mac(decode(payloads[0]).chaddr)
    address = ip(decode(server_payloads(name)[0]).yiaddr)
    settings = core_settings(config(uefi_http=True), PLAN, 8080)
    core = build_core(DhcpSettings(settings, {mac: IP(address)}))
    stages: dict[int, str | None] = {}
    for payload in payloads:
        reply = reply_of(feed(core, payload))
        boot = reply.options.get(67)
        stages.setdefault(decode(payload).xid, boot.rstrip(b"\0").decode() if boot else None)
    assert list(stages.values()) == [None, HTTP_EFI, SCRIPT]
