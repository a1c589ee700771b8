"""Ethernet/IPv4/UDP framing around DHCP payloads, and the socket filter (layer 1: pure).

The server reads whole Ethernet frames from an AF_PACKET socket and answers clients that have
no address yet with whole frames, so this module builds the IPv4 and UDP headers itself,
checksums included (RFC 791 §3.1, RFC 768; the one's-complement sum of RFC 1071).

Incoming UDP checksums are not verified: on veth and with checksum offload a locally sent
datagram carries only a partial checksum when a packet socket sees it.
"""

from __future__ import annotations

import struct
import sys
from array import array

ETH_P_IP = 0x0800
ETH_HEADER = struct.Struct("!6s6sH")
IP_HEADER = struct.Struct("!BBHHHBBH4s4s")
UDP_HEADER = struct.Struct("!HHHH")
_PORTS = struct.Struct("!HH")
_IP_TTL = 64
_IPPROTO_UDP = 17

# Classic BPF for "ip and udp dst port 67 and not udp src port 67" on an Ethernet socket: the
# clients on the link (they send from port 68); relay agents send from port 67 and are read
# from the UDP socket (``BPF_FROM_RELAYS``). Exactly what ``tcpdump -dd`` prints for that
# expression (a unit test keeps it so). Fragments with a non-zero offset are refused in the
# kernel; everything else reaches ``parse_frame``.
BPF_LINK_CLIENTS: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x0000000C),  # ldh [12]            ethertype
    (0x15, 0, 10, 0x00000800),  # jeq #0x800          IPv4?
    (0x30, 0, 0, 0x00000017),  # ldb [23]            protocol
    (0x15, 0, 8, 0x00000011),  # jeq #17             UDP?
    (0x28, 0, 0, 0x00000014),  # ldh [20]            flags + fragment offset
    (0x45, 6, 0, 0x00001FFF),  # jset #0x1fff        not the first fragment: drop
    (0xB1, 0, 0, 0x0000000E),  # ldxb 4*([14]&0xf)   IP header length
    (0x48, 0, 0, 0x00000010),  # ldh [x + 16]        UDP destination port
    (0x15, 0, 3, 0x00000043),  # jeq #67
    (0x48, 0, 0, 0x0000000E),  # ldh [x + 14]        UDP source port
    (0x15, 1, 0, 0x00000043),  # jeq #67             a relay agent: drop here
    (0x06, 0, 0, 0x00040000),  # ret #262144         accept
    (0x06, 0, 0, 0x00000000),  # ret #0              drop
)
# For the UDP socket bound to port 67: a socket filter there sees the datagram from its UDP
# header on, so this keeps what comes from port 67 (relay agents, RFC 1542 §5.4) and drops the
# clients' broadcasts, which the packet socket reads.
BPF_FROM_RELAYS: tuple[tuple[int, int, int, int], ...] = (
    (0x28, 0, 0, 0x00000000),  # ldh [0]             UDP source port
    (0x15, 0, 1, 0x00000043),  # jeq #67
    (0x06, 0, 0, 0x00040000),  # ret #262144         accept
    (0x06, 0, 0, 0x00000000),  # ret #0              drop
)


def bpf_program(instructions: tuple[tuple[int, int, int, int], ...]) -> bytes:
    """The ``struct sock_filter[]`` array for SO_ATTACH_FILTER."""
    return b"".join(struct.pack("HBBI", *ins) for ins in instructions)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071), summed 16 bits at a time in C by ``array``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(array("H", data))
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    total = (total & 0xFFFF) + (total >> 16)
    value = ~total & 0xFFFF
    if sys.byteorder == "little":  # RFC 1071 §2(B): the sum is byte-order independent
        value = ((value & 0xFF) << 8) | (value >> 8)
    return value


def parse_frame(frame: bytes) -> tuple[bytes, bytes, int, bytes] | None:
    """(source MAC, source IP, source port, UDP payload) of an IPv4/UDP frame, else None."""
    if len(frame) < 42:
        return None
    ethertype = (frame[12] << 8) | frame[13]
    if ethertype != ETH_P_IP or frame[23] != _IPPROTO_UDP:
        return None
    ihl = (frame[14] & 0x0F) * 4
    if ihl < 20 or frame[14] >> 4 != 4:
        return None
    total = (frame[16] << 8) | frame[17]
    if (frame[20] & 0x3F) or frame[21]:  # more-fragments or an offset: not for us
        return None
    udp = 14 + ihl
    if len(frame) < udp + 8 or total < ihl + 8:
        return None
    sport = (frame[udp] << 8) | frame[udp + 1]
    length = (frame[udp + 4] << 8) | frame[udp + 5]
    end = min(udp + length, 14 + total, len(frame))
    if length < 8:
        return None
    return frame[6:12], frame[26:30], sport, frame[udp + 8 : end]


def build_frame(
    src_mac: bytes,
    dst_mac: bytes,
    src_ip: bytes,
    dst_ip: bytes,
    ports: tuple[int, int],
    payload: bytes,
) -> bytes:
    """An Ethernet frame carrying ``payload`` in UDP over IPv4, with both checksums."""
    udp_len = 8 + len(payload)
    total = 20 + udp_len
    sport, dport = ports
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, _IPPROTO_UDP, udp_len)
    udp_header = UDP_HEADER.pack(sport, dport, udp_len, 0)
    udp_sum = checksum(pseudo + udp_header + payload) or 0xFFFF  # RFC 768: 0 means "none"
    ip_header = IP_HEADER.pack(0x45, 0, total, 0, 0x4000, _IP_TTL, _IPPROTO_UDP, 0, src_ip, dst_ip)
    ip_header = ip_header[:10] + checksum(ip_header).to_bytes(2, "big") + ip_header[12:]
    return b"".join(
        (
            ETH_HEADER.pack(dst_mac, src_mac, ETH_P_IP),
            ip_header,
            UDP_HEADER.pack(sport, dport, udp_len, udp_sum),
            payload,
        )
    )
