"""The lean codec: malformed input is refused with a reason; real packets and every message it
builds decode the same way in scapy (the reference)."""

from __future__ import annotations

import contextlib
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from racker.dhcp.codec import Message, decode, encode
from racker.dhcp.options import MAGIC_COOKIE, MIN_MESSAGE_LEN, Opt
from racker.errors import PacketError
from tests.unit.dhcp.helpers import (
    client_payloads,
    scapy_header,
    scapy_options,
    server_payloads,
)

CAPTURES = [
    "seabios-ipxe-rom-e1000.pcap",
    "ovmf-ipxe-rom-e1000.pcap",
    "ovmf-native-pxe-virtio.pcap",
    "ovmf-httpboot-virtio.pcap",
    "ipxe-chainload-undionly.pcap",
]


def header(cookie: bytes = MAGIC_COOKIE, sname: bytes = b"", file: bytes = b"") -> bytes:
    fixed = struct.pack(
        "!BBBBIHH4s4s4s4s16s64s128s",
        1, 1, 6, 0, 0x1234, 0, 0, b"\0" * 4, b"\0" * 4, b"\0" * 4, b"\0" * 4,
        bytes.fromhex("525400aa0001"), sname, file,
    )  # fmt: skip
    return fixed + cookie


MALFORMED = [
    ("empty", b"", "truncated"),
    ("header only", header()[:100], "truncated"),
    ("no cookie", header()[:236], "truncated"),
    ("bad cookie", header(cookie=b"\x63\x82\x53\x64") + b"\x35\x01\x01\xff", "magic cookie"),
    ("length past end", header() + b"\x35\x01\x01\x0c\x09abc", "claims 9 bytes"),
    ("cut before length", header() + b"\x35\x01\x01\x0c", "cut off"),
    ("overload bad value", header() + b"\x34\x01\x07\xff", "overload"),
    ("overload two bytes", header() + b"\x34\x02\x01\x01\xff", "overload"),
    (
        "overload loop in file",
        header(file=b"\x34\x01\x01\xff") + b"\x35\x01\x01\x34\x01\x01\xff",
        "overload loop",
    ),
    (
        "overload loop in sname",
        header(sname=b"\x34\x01\x03\xff") + b"\x35\x01\x01\x34\x01\x03\xff",
        "overload loop",
    ),
    (
        "overloaded field too long option",
        header(file=b"\x0c\xf0abc") + b"\x35\x01\x01\x34\x01\x01\xff",
        "file field",
    ),
]


@pytest.mark.parametrize(
    ("data", "reason"), [(d, r) for _, d, r in MALFORMED], ids=[n for n, _, _ in MALFORMED]
)
def test_malformed_packets_are_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        decode(data)


def test_hlen_over_16_is_refused() -> None:
    data = bytearray(header() + b"\x35\x01\x01\xff")
    data[2] = 17
    with pytest.raises(PacketError, match="hardware address length"):
        decode(bytes(data))


def test_pad_end_and_missing_end_are_accepted() -> None:
    msg = decode(header() + b"\x00\x00\x35\x01\x01\x00\xff\x0c\x03abc")
    assert msg.options == {53: b"\x01"}  # nothing after END is read
    msg = decode(header() + b"\x35\x01\x03\x0c\x02hi")  # no END, ends exactly at the datagram
    assert msg.options == {53: b"\x03", 12: b"hi"}


def test_overload_reads_file_then_sname_and_concatenates_repeats() -> None:
    data = header(sname=b"\x0c\x02ef\xff", file=b"\x0c\x02cd\x3c\x01x\xff") + (
        b"\x35\x01\x01\x0c\x02ab\x34\x01\x03\xff"
    )
    msg = decode(data)
    assert msg.options[12] == b"abcdef"  # RFC 3396 concatenation, RFC 2131 §4.1 order
    assert msg.options[60] == b"x"
    assert msg.file == b""
    assert msg.sname == b""


def test_sname_and_file_stop_at_nul() -> None:
    msg = decode(header(sname=b"srv\0junk", file=b"boot.efi\0junk") + b"\x35\x01\x01\xff")
    assert (msg.sname, msg.file) == (b"srv", b"boot.efi")


@pytest.mark.parametrize("name", CAPTURES)
def test_real_firmware_packets_decode_like_scapy(name: str) -> None:
    payloads = client_payloads(name) + server_payloads(name)
    assert payloads
    for payload in payloads:
        msg = decode(payload)
        assert msg.options == scapy_options(payload)
        assert list(msg.options) == list(scapy_options(payload))  # wire order kept
        ref = scapy_header(payload)
        assert msg.xid == ref["xid"]
        assert msg.chaddr == ref["chaddr"]
        assert msg.flags == ref["flags"]


def test_long_values_are_split_and_rejoined() -> None:
    value = bytes(range(256)) * 2
    msg = Message(op=2, xid=1, chaddr=b"\x52\x54\0\0\0\1", options={53: b"\x02", 43: value})
    data = encode(msg)
    assert decode(data).options[43] == value
    assert scapy_options(data)[43] == value


def test_replies_are_padded_to_the_bootp_minimum() -> None:
    data = encode(Message(op=2, xid=7, chaddr=b"\x52\x54\0\0\0\1", options={53: b"\x05"}))
    assert len(data) == MIN_MESSAGE_LEN


ipv4 = st.integers(0, 2**32 - 1).map(
    lambda n: socket.inet_aton(socket.inet_ntoa(n.to_bytes(4, "big")))
)
# Values scapy types (IP lists, ints, shorts) get values of the right size; others any bytes.
TYPED = {
    1: ipv4,
    3: st.lists(ipv4, min_size=1, max_size=4).map(b"".join),
    6: st.lists(ipv4, min_size=1, max_size=4).map(b"".join),
    28: ipv4,
    51: st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")),
    54: ipv4,
    58: st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")),
    59: st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")),
    60: st.binary(min_size=1, max_size=40),
    61: st.binary(min_size=2, max_size=20),
    66: st.binary(min_size=1, max_size=60).filter(lambda b: b"\0" not in b),
    67: st.binary(min_size=1, max_size=120),
    82: st.binary(min_size=2, max_size=60),
    97: st.binary(min_size=17, max_size=17),
    175: st.binary(min_size=1, max_size=60),
}


@st.composite
def messages(draw: st.DrawFn) -> Message:
    codes = draw(st.lists(st.sampled_from(sorted(TYPED)), unique=True, max_size=len(TYPED)))
    options = {Opt.MESSAGE_TYPE.value: bytes([draw(st.integers(1, 8))])}
    for code in codes:
        options[code] = draw(TYPED[code])
    return Message(
        op=2,
        xid=draw(st.integers(0, 2**32 - 1)),
        chaddr=draw(st.binary(min_size=6, max_size=6)),
        flags=draw(st.sampled_from([0, 0x8000])),
        ciaddr=draw(ipv4),
        yiaddr=draw(ipv4),
        siaddr=draw(ipv4),
        giaddr=draw(ipv4),
        file=draw(st.binary(max_size=127).map(lambda b: b.replace(b"\0", b"x"))),
        options=options,
    )


@settings(max_examples=300, deadline=None)
@given(messages())
def test_every_encoded_message_decodes_identically_in_scapy(msg: Message) -> None:
    data = encode(msg)
    assert decode(data) == msg
    assert scapy_options(data) == msg.options
    ref = scapy_header(data)
    assert ref["xid"] == msg.xid
    assert ref["chaddr"] == msg.chaddr
    assert ref["file"] == msg.file
    for name in ("ciaddr", "yiaddr", "siaddr", "giaddr"):
        assert ref[name] == socket.inet_ntoa(getattr(msg, name))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_decode_or_raise_packet_error(data: bytes) -> None:
    with contextlib.suppress(PacketError):  # anything else (IndexError...) fails the test
        decode(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=300))
def test_random_options_after_a_valid_header_decode_or_raise_packet_error(tail: bytes) -> None:
    with contextlib.suppress(PacketError):
        decode(header() + tail)
