"""The self-test's DHCP exchanges: DISCOVER → OFFER → REQUEST → ACK per firmware kind (scapy).

How the messages reach racker. ``racker serve`` reads clients from a packet socket bound to
ETH_P_IP on the PXE interface, and Linux hands a NIC's own outgoing frames only to ETH_P_ALL
sockets (``dev_queue_xmit_nit``): a frame sent with scapy's ``sendp`` on that NIC leaves on the
wire and racker never sees it (checked in a namespace; ``racker.dhcp.probe`` says the same).
The self-test therefore speaks as a relay agent on this host: each message, built with scapy as
the firmware would send it plus the proof of ``racker.dhcp.selftest``, goes from racker's
address, port 67, to racker's address, port 67, with giaddr = racker's address, through a raw
IP socket bound to the PXE interface. The kernel delivers it locally (it never reaches the
wire) to racker's relay socket, which is bound to that interface too. racker answers a proven
request to the client's MAC on the PXE link, through its packet socket; a packet socket here
(ETH_P_ALL, which does see outgoing frames) reads the answer, and scapy parses it.

What is tested: racker's relay socket, its DHCP core and replies, its packet-socket sending.
What is not: its link receive path (the BPF-filtered packet socket), which only a frame from
another machine can reach.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import secrets
import select
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from racker.dhcp.boot import BootChoice, choose_boot, classify
from racker.dhcp.frames import bpf_program
from racker.dhcp.options import CLIENT_PORT, SERVER_PORT, MessageType
from racker.dhcp.rogue import BPF_SERVER_REPLIES
from racker.dhcp.selftest import OPTION, TEST_ADDRESS, make_proof
from racker.selftest.report import Check, CheckFailed, timed
from racker.selftest.target import Target

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
_DISCOVER = MessageType.DISCOVER.value
_REQUEST = MessageType.REQUEST.value
_OFFER = MessageType.OFFER.value
_ACK = MessageType.ACK.value


@dataclass(frozen=True)
class FirmwareKind:
    name: str
    options: dict[int, bytes]  # what such firmware sends besides 53, 50, 54 (fixtures/firmware)


# What the firmware in /work/shared/fixtures/firmware sends in its DISCOVER (options 55, 57,
# 60, 93, 94, 97, 77, 175; read from the captures): OVMF's own PXE and HTTP boot (virtio-net),
# iPXE (SeaBIOS's iPXE ROM); a BIOS PXE ROM that is not iPXE sends iPXE's 60/93/94 without
# 77 and 175.
_OVMF_PARAMS = bytes(
    [1, 2, 3, 4, 5, 6, 12, 13, 15, 17, 18, 22, 23, 28, 40, 41, 42, 43, 50, 51, 54, 58, 59, 60]
)
_IPXE_PARAMS = bytes(
    (1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 131, 132, 133, 134, 135)
) + bytes((175, 203))
_PXE_PARAMS = _OVMF_PARAMS + bytes([66, 67, 97, 128, 129, 130, 131, 132, 133, 134, 135])
_UUID = b"\x00" + bytes(range(0x10, 0x20))  # option 97: type 0, a fixed test GUID
_IPXE_FEATURES = bytes.fromhex(  # option 175 of SeaBIOS's iPXE ROM, as captured
    "b105018086100eeb03010000170101220101130101110101270101190101290101100102210101150101180101"
    "120101"
)
KINDS = (
    FirmwareKind(
        "bios",
        {
            55: _IPXE_PARAMS[:-2],
            60: b"PXEClient:Arch:00000:UNDI:002001",
            93: b"\x00\x00",
            94: b"\x01\x02\x01",
        },
    ),
    FirmwareKind(
        "uefi",
        {
            55: _PXE_PARAMS,
            57: b"\x05\xc0",
            60: b"PXEClient:Arch:00007:UNDI:003000",
            93: b"\x00\x07",
            94: b"\x01\x03\x00",
            97: _UUID,
        },
    ),
    FirmwareKind(
        "ipxe",
        {
            55: _IPXE_PARAMS,
            60: b"PXEClient:Arch:00000:UNDI:002001",
            93: b"\x00\x00",
            94: b"\x01\x02\x01",
            77: b"iPXE",
            175: _IPXE_FEATURES,
        },
    ),
    FirmwareKind(
        "uefi-http",
        {
            55: _OVMF_PARAMS + bytes([235, 67, 97]),
            57: b"\x05\xc0",
            60: b"HTTPClient:Arch:00016:UNDI:003000",
            93: b"\x00\x10",
            94: b"\x01\x03\x00",
            97: _UUID,
        },
    ),
)


def random_laa_mac() -> bytes:
    """A random unicast, locally administered MAC (IEEE 802: bit 1 set, bit 0 clear)."""
    first = (secrets.token_bytes(1)[0] & 0xFC) | 0x02
    return bytes([first]) + secrets.token_bytes(5)


def check_dhcp(target: Target, timeout: float = 3.0) -> list[Check]:
    """One check per firmware kind: a full exchange answered as racker should answer it."""
    import scapy.layers.dhcp
    import scapy.layers.l2  # noqa: F401

    with _link(target) as link:
        return [timed("dhcp", k.name, functools.partial(link.exchange, k, timeout)) for k in KINDS]


def expected_boot(target: Target, kind: FirmwareKind, mac: bytes) -> BootChoice | None:
    """The boot file racker should give ``kind`` from ``mac``, by racker's own rules."""
    return choose_boot(classify(kind.options), target.boot, mac.hex(":"))


def build_request(
    target: Target,
    kind: FirmwareKind,
    mac: bytes,
    xid: int,
    mtype: int,
    extra: dict[int, bytes],
    when: float,
) -> Any:
    """The self-test's message as scapy builds it: a relayed DHCP request of ``kind`` from
    ``mac``, proven with racker's key at ``when`` (IP/UDP/BOOTP/DHCP, see the module)."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP

    server_ip = target.server_ip
    proof = make_proof(target.key, mac, xid, mtype, when)
    options: list[Any] = [("message-type", mtype)]
    options += [(code, value) for code, value in {**kind.options, **extra}.items()]
    options += [(OPTION, proof), "end"]
    return (
        IP(src=server_ip, dst=server_ip, ttl=64)
        / UDP(sport=SERVER_PORT, dport=SERVER_PORT)
        / BOOTP(op=1, hops=1, xid=xid, giaddr=server_ip, chaddr=mac + b"\0" * 10)
        / DHCP(options=options)
    )


class _Link:
    def __init__(self, target: Target, send: socket.socket, sniff: socket.socket) -> None:
        self._target = target
        self._send = send
        self._sniff = sniff

    def exchange(self, kind: FirmwareKind, timeout: float) -> str:
        from scapy.layers.dhcp import BOOTP

        mac = random_laa_mac()
        xid = int.from_bytes(secrets.token_bytes(4), "big")
        server = socket.inet_aton(self._target.server_ip)
        want = expected_boot(self._target, kind, mac)
        offer = self._ask(kind, mac, xid, _DISCOVER, {}, timeout)
        verify_reply(offer, _OFFER, server, want)
        chosen = {50: TEST_ADDRESS.packed, 54: server}
        ack = self._ask(kind, mac, xid, _REQUEST, chosen, timeout)
        verify_reply(ack, _ACK, server, want)
        assert isinstance(ack, BOOTP)
        boot = want.file if want is not None else "no boot file"
        return f"OFFER+ACK {ack.yiaddr} from {mac.hex(':')}, {boot}"

    def _ask(
        self,
        kind: FirmwareKind,
        mac: bytes,
        xid: int,
        mtype: int,
        extra: dict[int, bytes],
        timeout: float,
    ) -> Any:
        from scapy.compat import raw
        from scapy.layers.dhcp import BOOTP

        server_ip = self._target.server_ip
        packet = build_request(self._target, kind, mac, xid, mtype, extra, time.time())
        self._send.sendto(raw(packet), (server_ip, 0))
        deadline = time.monotonic() + timeout
        wanted = xid.to_bytes(4, "big")
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self._sniff], [], [], left)
            if not ready:
                break
            frame = self._sniff.recv(4096)
            # Cheap checks first (the link may be busy): IPv4, UDP, to port 68, this xid.
            if len(frame) < 50 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue
            udp = 14 + (frame[14] & 0x0F) * 4
            if frame[udp + 2 : udp + 4] != CLIENT_PORT.to_bytes(2, "big"):
                continue
            if frame[udp + 12 : udp + 16] != wanted or frame[udp + 36 : udp + 42] != mac:
                continue
            from scapy.layers.l2 import Ether

            reply = Ether(frame).getlayer(BOOTP)
            if reply is not None and reply.op == 2:
                return reply
        name = MessageType(mtype).name
        raise CheckFailed(f"no answer to the {kind.name} {name} within {timeout:g} s")


def verify_reply(reply: Any, mtype: int, server: bytes, want: BootChoice | None) -> None:
    """Check scapy's parse of racker's ``reply`` (a BOOTP layer): message type ``mtype``, the
    self-test's address, racker's server id and the boot file ``want``; ``CheckFailed`` if not."""
    from scapy.layers.dhcp import DHCP

    options = _options(reply.getlayer(DHCP))
    got = options.get(53, b"\0")[0]
    name = MessageType(mtype).name
    if got != mtype:
        raise CheckFailed(f"expected {name}, got message type {got}")
    if reply.yiaddr != str(TEST_ADDRESS):
        raise CheckFailed(f"{name} gives {reply.yiaddr}, not the self-test's {TEST_ADDRESS}")
    if options.get(54) != server:
        raise CheckFailed(f"{name} has server id {options.get(54)!r}")
    boot = options.get(67, b"").rstrip(b"\0").decode("ascii", "replace")
    expected = want.file if want is not None else ""
    if boot != expected:
        raise CheckFailed(f"{name} boot file {boot or 'none'!r}, expected {expected or 'none'!r}")
    if want is not None and want.tftp and reply.siaddr != socket.inet_ntoa(server):
        raise CheckFailed(f"{name} next server {reply.siaddr}, expected racker's")
    if want is not None and want.http_client and options.get(60) != b"HTTPClient":
        raise CheckFailed(f"{name} to an HTTP boot client lacks option 60 HTTPClient")


def _options(dhcp: Any) -> dict[int, bytes]:
    """The options of scapy's DHCP layer as code -> raw value (first occurrence), read from
    its bytes: scapy's own decoding names and converts only the options it knows."""
    from scapy.compat import raw

    data = raw(dhcp) if dhcp is not None else b""
    found: dict[int, bytes] = {}
    pos = 0
    while pos < len(data):
        code = data[pos]
        if code == 255:
            break
        if code == 0:
            pos += 1
            continue
        if pos + 1 >= len(data):
            break
        length = data[pos + 1]
        found.setdefault(code, data[pos + 2 : pos + 2 + length])
        pos += 2 + length
    return found


@contextlib.contextmanager
def _link(target: Target) -> Iterator[_Link]:
    device = target.interface.encode()
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        send.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, device)
        # Only DHCP replies (UDP 67 -> 68) are queued, not everything a busy PXE link carries;
        # filter before bind, so nothing unfiltered is queued in between.
        program = ctypes.create_string_buffer(bpf_program(BPF_SERVER_REPLIES))
        fprog = struct.pack("HL", len(BPF_SERVER_REPLIES), ctypes.addressof(program))
        sniff.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
        sniff.bind((target.interface, ETH_P_ALL))
        yield _Link(target, send, sniff)
    finally:
        send.close()
        sniff.close()
