"""Shared helpers for the DHCP tests: fixture captures and scapy as the reference decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.dhcp import BOOTP, DHCP, DHCPRevOptions
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "dhcp"


def capture(name: str) -> list[Any]:
    return list(rdpcap(str(FIXTURES / name)))


def client_payloads(name: str) -> list[bytes]:
    """The DHCP payloads the client sent (UDP to port 67), in capture order."""
    return [bytes(p[UDP].payload) for p in capture(name) if p[UDP].dport == 67]


def server_payloads(name: str) -> list[bytes]:
    return [bytes(p[UDP].payload) for p in capture(name) if p[UDP].dport == 68]


def scapy_options(payload: bytes) -> dict[int, bytes]:
    """Decode the options with scapy and turn its typed values back into raw bytes."""
    pkt = BOOTP(payload)
    out: dict[int, bytes] = {}
    for item in pkt[DHCP].options:
        if item in ("end", "pad"):
            continue
        name, *values = item
        if isinstance(name, int):
            code, raw = name, b"".join(values)
        else:
            code, fld = DHCPRevOptions[name]
            if fld is None:
                raw = b"".join(values)
            else:
                raw = b"".join(fld.addfield(None, b"", v) for v in values)
        out[code] = out.get(code, b"") + raw
    return out


def scapy_header(payload: bytes) -> dict[str, Any]:
    pkt = BOOTP(payload)
    return {
        "op": pkt.op,
        "xid": pkt.xid,
        "flags": int(pkt.flags),
        "ciaddr": pkt.ciaddr,
        "yiaddr": pkt.yiaddr,
        "siaddr": pkt.siaddr,
        "giaddr": pkt.giaddr,
        "chaddr": bytes(pkt.chaddr)[: pkt.hlen],
        "file": bytes(pkt.file).split(b"\0", 1)[0],
        "sname": bytes(pkt.sname).split(b"\0", 1)[0],
    }
