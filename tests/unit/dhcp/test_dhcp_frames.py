"""Framing: the hand-written BPF equals tcpdump's, frames carry correct checksums (scapy
checks them), and parse_frame takes only unfragmented IPv4/UDP."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from racker.dhcp.frames import BPF_LINK_CLIENTS, build_frame, checksum, parse_frame

SRC_MAC = bytes.fromhex("525400aa00fe")
DST_MAC = bytes.fromhex("525400aa0001")


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_bpf_filter_is_what_tcpdump_compiles() -> None:
    out = subprocess.run(
        ["tcpdump", "-dd", "ip and udp dst port 67 and not udp src port 67"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    compiled = tuple(
        tuple(int(v, 0) for v in m) for m in re.findall(r"\{ (\S+), (\d+), (\d+), (\S+) \}", out)
    )
    assert compiled == BPF_LINK_CLIENTS


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=700), st.integers(1, 65535))
def test_built_frames_have_checksums_scapy_accepts(payload: bytes, dport: int) -> None:
    frame = build_frame(
        SRC_MAC, DST_MAC, bytes([10, 99, 0, 1]), bytes([10, 99, 0, 64]), (67, dport), payload
    )
    pkt = Ether(frame)
    ip_sum, udp_sum = pkt[IP].chksum, pkt[UDP].chksum
    del pkt[IP].chksum
    del pkt[UDP].chksum
    rebuilt = Ether(bytes(pkt))
    assert rebuilt[IP].chksum == ip_sum
    assert rebuilt[UDP].chksum == udp_sum
    assert bytes(rebuilt[UDP].payload) == payload
    assert (pkt[IP].src, pkt[IP].dst, pkt[UDP].sport, pkt[UDP].dport) == (
        "10.99.0.1",
        "10.99.0.64",
        67,
        dport,
    )
    assert parse_frame(frame) == (SRC_MAC, bytes([10, 99, 0, 1]), 67, payload)


def test_checksum_of_rfc1071_example() -> None:
    # RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2; the checksum is its complement.
    assert checksum(bytes.fromhex("0001f203f4f5f6f7")) == 0xFFFF - 0xDDF2


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        (
            bytes(
                Ether()
                / IP(src="10.0.0.2", dst="10.0.0.1", flags="MF")
                / UDP(sport=68, dport=67)
                / b"x"
            ),
            "fragment",
        ),
        (
            bytes(
                Ether()
                / IP(src="10.0.0.2", dst="10.0.0.1", frag=10)
                / UDP(sport=68, dport=67)
                / b"x"
            ),
            "fragment",
        ),
        (bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1", proto=6) / (b"\0" * 30)), "not UDP"),
        (bytes(Ether(type=0x86DD) / (b"\0" * 60)), "not IPv4"),
        (
            bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=68, dport=67))[:40],
            "short",
        ),
    ],
)
def test_parse_frame_refuses(frame: bytes, why: str) -> None:
    assert parse_frame(frame) is None, why


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_parse_frame_never_raises(frame: bytes) -> None:
    parse_frame(frame)
