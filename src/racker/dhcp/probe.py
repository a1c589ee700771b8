"""``racker factory check --probe``: which DHCP servers answer on the PXE network (layer 3).

A DHCPDISCOVER crafted with scapy, as a PXE BIOS client would send it (option 60
``PXEClient``, option 93 arch 0, the broadcast flag), from a random locally administered MAC,
goes out of the interface; for ``seconds`` every reply to it (same xid and MAC) is collected and
each server named once: its address (option 54, else the IP source), its MAC, what it offered.
A server whose MAC is racker's own is marked as racker (its address only when no MAC of racker's
is known). At most ``MAX_ANSWERS`` servers are listed, further answers counted: anyone on the
link sees the broadcast DISCOVER and may answer it from as many forged servers as it likes.

The replies are read from a packet socket with ``BPF_SERVER_REPLIES`` (the passive watcher's
filter), in promiscuous mode for the probe's duration, so a server that ignores the broadcast
flag and unicasts to the probe's MAC is heard too. The kernel does not hand a NIC's own sent
frames to a protocol's packet socket, so a ``racker serve`` on this very NIC never sees the
probe (and is not listed): run the probe from another machine on the link to see racker answer.
scapy is imported inside ``probe_dhcp_servers`` so that ``racker --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import socket
import struct
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from typing import Any

from racker.dhcp.frames import ETH_P_IP
from racker.dhcp.rogue import BPF_SERVER_REPLIES
from racker.dhcp.sockets import attach_filter
from racker.errors import EnvironmentProblem, Problem
from racker.rack.report import Check

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
_MESSAGE_TYPES = {2: "OFFER", 5: "ACK", 6: "NAK"}
PXE_BIOS_VENDOR_CLASS = b"PXEClient:Arch:00000:UNDI:002001"
MAX_ANSWERS = 64  # servers listed; further ones are counted in ``unlisted``


@dataclass(frozen=True)
class ProbeAnswer:
    server_ip: str
    server_mac: str
    message_type: str
    offered: str | None
    racker: bool  # racker's own MAC (its address, when no MAC of racker's is known)


@dataclass
class ProbeResult:
    interface: str
    client_mac: str  # the random MAC the DISCOVER came from
    xid: int
    seconds: float
    answers: list[ProbeAnswer] = field(default_factory=list)
    unlisted: int = 0  # answers from further servers, past MAX_ANSWERS listed

    @property
    def rogues(self) -> list[ProbeAnswer]:
        return [a for a in self.answers if not a.racker]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rogue"] = bool(self.rogues)
        return data


def probe_check(result: ProbeResult) -> Check:
    """The probe as a line of ``racker factory check``: ✗ when a server other than racker
    answered, with each server as a detail line."""
    details = tuple(
        f"{a.server_ip} ({a.server_mac}): {a.message_type}"
        + (f" of {a.offered}" if a.offered else "")
        + (" — racker" if a.racker else " — NOT racker")
        for a in result.answers
    )
    where = f"DHCP probe on {result.interface} ({result.seconds:g} s, from {result.client_mac})"
    problems = tuple(
        Problem(
            f"--probe on {result.interface}",
            None,
            f"another DHCP server answers: {a.server_ip} (MAC {a.server_mac})",
            "switch it off or move it off the rack network (a home router, a switch's DHCP"
            " service): a node that takes its offer does not boot from racker",
        )
        for a in result.rogues
    )
    if not result.answers:
        title = f"{where}: no DHCP server answered"
    elif problems:
        title = f"{where}: {len(result.rogues)} DHCP server(s) other than racker answered"
    else:
        title = f"{where}: only racker answered"
    if result.unlisted:  # past MAX_ANSWERS servers: a flood of forged ones, not racker
        title += f"; {result.unlisted} more answers from servers not listed"
    return Check(not problems and not result.unlisted, title, problems, details)


def random_laa_mac(token: Callable[[int], bytes] = secrets.token_bytes) -> bytes:
    """A random unicast, locally administered MAC (IEEE 802: bit 1 of the first byte set,
    bit 0 clear), so the probe never poses as a real NIC."""
    raw = bytearray(token(6))
    raw[0] = (raw[0] & 0xFC) | 0x02
    return bytes(raw)


def discover_frame(mac: bytes, xid: int) -> bytes:
    """The probe's DHCPDISCOVER as an Ethernet broadcast, built by scapy."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    packet = (
        Ether(src=mac.hex(":"), dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")  # noqa: S104 (a client without an address)
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=mac + bytes(10), xid=xid, flags=0x8000)
        / DHCP(
            options=[
                ("message-type", "discover"),
                ("vendor_class_id", PXE_BIOS_VENDOR_CLASS),
                (93, b"\x00\x00"),  # client system architecture: x86 BIOS (RFC 4578)
                ("param_req_list", [1, 3, 6, 54, 66, 67]),
                "end",
            ]
        )
    )
    return bytes(packet)


def parse_answer(
    frame: bytes, mac: bytes, xid: int, racker_ips: Collection[str], racker_macs: Collection[str]
) -> ProbeAnswer | None:
    """A server's answer to the probe (same xid and client MAC) in ``frame``, else None."""
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    packet = Ether(frame)
    if BOOTP not in packet or IP not in packet:
        return None
    bootp = packet[BOOTP]
    if bootp.op != 2 or bootp.xid != xid or bytes(bootp.chaddr)[:6] != mac:
        return None
    options: dict[str, Any] = {}
    if DHCP in packet:
        options = {o[0]: o[1] for o in packet[DHCP].options if isinstance(o, tuple) and len(o) > 1}
    kind = options.get("message-type")
    if kind is None:
        message_type = "BOOTP"
    elif kind in _MESSAGE_TYPES:
        message_type = _MESSAGE_TYPES[kind]
    else:
        return None
    server_ip = str(options.get("server_id") or packet[IP].src)
    server_mac = str(packet[Ether].src).lower()
    offered = str(bootp.yiaddr) if bootp.yiaddr != "0.0.0.0" else None  # noqa: S104
    # Racker is known by its MAC: a server id is the sender's say, and a server that claims
    # racker's address from another MAC (a second racker, a router given the same address)
    # is the rogue this probe is for. Only when no MAC of racker's is known is the id taken.
    macs = {m.lower() for m in racker_macs}
    racker = server_mac in macs if macs else server_ip in racker_ips
    return ProbeAnswer(server_ip, server_mac, message_type, offered, racker)


def probe_dhcp_servers(
    interface: str,
    seconds: float = 5.0,
    racker_ips: Collection[str] = (),
    racker_macs: Collection[str] = (),
    clock: Callable[[], float] = time.monotonic,
) -> ProbeResult:
    """Send one DISCOVER on ``interface`` (again after a second if nobody answered) and list
    every server that answers within ``seconds``. Needs root (CAP_NET_RAW)."""
    mac = random_laa_mac()
    xid = int.from_bytes(secrets.token_bytes(4), "big")
    result = ProbeResult(interface, mac.hex(":"), xid, seconds)
    frame = discover_frame(mac, xid)
    try:
        sock = _probe_socket(interface)
    except OSError as exc:
        raise EnvironmentProblem(
            f"DHCP probe: cannot open a packet socket on {interface!r}: {exc.strerror}",
            "run 'racker factory check --probe' as root; name the PXE NIC with --interface",
        ) from None
    seen: set[tuple[str, str]] = set()
    with sock:
        start = clock()
        sock.send(frame)
        resent = False
        while (left := start + seconds - clock()) > 0:
            if not resent and not result.answers and clock() - start >= 1.0:
                sock.send(frame)  # one retransmission, as a client would (RFC 2131 §4.1)
                resent = True
            readable, _, _ = select.select([sock], [], [], min(left, 0.25))
            if not readable:
                continue
            with contextlib.suppress(BlockingIOError, InterruptedError):
                answer = parse_answer(sock.recv(4096), mac, xid, racker_ips, racker_macs)
                if answer is None or (answer.server_ip, answer.server_mac) in seen:
                    continue
                if len(result.answers) < MAX_ANSWERS:
                    seen.add((answer.server_ip, answer.server_mac))
                    result.answers.append(answer)
                else:  # neither listed nor remembered: bounded whatever the link sends
                    result.unlisted += 1
    return result


def _probe_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        attach_filter(sock, BPF_SERVER_REPLIES)
        sock.bind((interface, ETH_P_IP))
        # Promiscuous while the socket lives (the kernel drops the membership at close).
        index = socket.if_nametoindex(interface)
        mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
        sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
