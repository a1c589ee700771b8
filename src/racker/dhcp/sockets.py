"""The DHCP server's sockets (layer 3, used by ``racker.dhcp.server``): set-up only.

- ``packet_socket``: clients on the link, an AF_PACKET socket bound to the PXE interface for
  IPv4, with a classic BPF filter (``frames.BPF_LINK_CLIENTS``) so the kernel hands over only
  UDP to port 67 from other ports (a client without an address cannot be reached otherwise:
  RFC 2131 §4.1).
- ``relay_socket``: relay agents (which send from port 67, RFC 1542 §5.4), a UDP socket bound
  to port 67 on the interface, whose filter (``frames.BPF_FROM_RELAYS``) keeps only what comes
  from port 67: routed traffic takes the kernel's ordinary UDP path.

Both attach their filter before binding (nothing unfiltered is queued in between), ask for a
4 MiB receive buffer, and are non-blocking.
"""

from __future__ import annotations

import ctypes
import socket
import struct

from racker.dhcp.frames import BPF_FROM_RELAYS, BPF_LINK_CLIENTS, ETH_P_IP, bpf_program
from racker.dhcp.options import SERVER_PORT

SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
RCVBUF = 4 << 20


def packet_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
    try:
        attach_filter(sock, BPF_LINK_CLIENTS)
        grow_rcvbuf(sock)
        sock.bind((interface, ETH_P_IP))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def relay_socket(interface: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        attach_filter(sock, BPF_FROM_RELAYS)
        grow_rcvbuf(sock)
        sock.bind(("0.0.0.0", SERVER_PORT))  # noqa: S104 (bound to the PXE interface above)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def grow_rcvbuf(sock: socket.socket) -> None:
    # Bursts (a rack powering on, a load generator) must queue, not drop. SO_RCVBUFFORCE
    # needs CAP_NET_ADMIN and ignores net.core.rmem_max; fall back to the capped one.
    for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RCVBUF)
            return
        except OSError:
            continue


def attach_filter(sock: socket.socket, instructions: tuple[tuple[int, int, int, int], ...]) -> None:
    """SO_ATTACH_FILTER with a ``struct sock_fprog`` (length + pointer to the program); the
    kernel copies the program during the call, so the buffer only has to outlive it."""
    program = ctypes.create_string_buffer(bpf_program(instructions))
    fprog = struct.pack("HL", len(instructions), ctypes.addressof(program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
