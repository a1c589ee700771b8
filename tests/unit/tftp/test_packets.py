"""The TFTP codec: table tests, and a hypothesis cross-check against tftpy's packet layer."""

from __future__ import annotations

import contextlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tftpy.TftpPacketFactory import TftpPacketFactory
from tftpy.TftpPacketTypes import (
    TftpPacketACK,
    TftpPacketDAT,
    TftpPacketERR,
    TftpPacketOACK,
    TftpPacketRRQ,
)

from racker.errors import PacketError
from racker.tftp.packets import (
    Ack,
    Data,
    Error,
    Opcode,
    OptionAck,
    Request,
    decode,
    encode,
    encode_ack,
    encode_data,
    encode_error,
    encode_oack,
    encode_request,
)

# The RRQs real firmware sent (fixtures/firmware/README.md), byte for byte.
OVMF_PROBE = b"\0\1snponly.efi\0octet\0tsize\0000\0blksize\0001468\0windowsize\0004\0"
IPXE_RRQ = b"\0\1undionly.kpxe\0octet\0blksize\0001432\0tsize\0000\0"


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            OVMF_PROBE,
            Request(
                Opcode.RRQ,
                "snponly.efi",
                "octet",
                (("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")),
            ),
        ),
        (
            IPXE_RRQ,
            Request(Opcode.RRQ, "undionly.kpxe", "octet", (("blksize", "1432"), ("tsize", "0"))),
        ),
        (b"\0\1f\0NetASCII\0", Request(Opcode.RRQ, "f", "netascii")),
        (b"\0\2up\0octet\0", Request(Opcode.WRQ, "up", "octet")),
        (b"\0\1f\0octet\0\0\0\0", Request(Opcode.RRQ, "f", "octet")),  # NUL padding
        (b"\0\3\xff\xffabc", Data(65535, b"abc")),
        (b"\0\3\0\1", Data(1, b"")),
        (b"\0\4\1\0", Ack(256)),
        (b"\0\4\0\7junk", Ack(7)),
        (b"\0\5\0\10User aborted the transfer\0", Error(8, "User aborted the transfer")),
        (b"\0\5\0\1", Error(1, "")),
        (b"\0\6blksize\0001468\0", OptionAck((("blksize", "1468"),))),
    ],
)
def test_decode_table(wire: bytes, expected: object) -> None:
    assert decode(wire) == expected


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "too short"),
        (b"\0\1a", "too short"),
        (b"\0\7\0\0", "unknown TFTP opcode 7"),
        (b"\0\1file", "not NUL-terminated"),
        (b"\0\1file\0", "no transfer mode"),
        (b"\0\1\0octet\0", "empty filename"),
        (b"\0\1f\0octet\0blksize\0", "has no value"),
        (b"\0\1f\0octet\0\0" + b"512\0", "empty option name"),
        (b"\0\1f\0oct\xffet\0", "mode is not ASCII"),
        (b"\0\1\xff\xfe\0octet\0", "not UTF-8"),
        (b"\0\1" + b"a" * 1025 + b"\0octet\0", "longer than 1024"),
        (b"\0\6", "too short"),
    ],
)
def test_malformed_packets_raise_packet_error(wire: bytes, reason: str) -> None:
    with pytest.raises(PacketError, match=reason):
        decode(wire)


def test_encoders_round_trip() -> None:
    for packet in (
        Request(Opcode.RRQ, "a/b.efi", "octet", (("blksize", "1468"),)),
        Data(65535, b"x" * 512),
        Ack(0),
        Error(2, "access violation"),
        OptionAck((("tsize", "74213"), ("blksize", "1432"))),
    ):
        assert decode(encode(packet)) == packet


def test_block_numbers_are_sent_modulo_65536() -> None:
    assert encode_data(65536, b"") == b"\0\3\0\0"
    assert encode_ack(65537) == b"\0\4\0\1"


def test_error_message_cannot_smuggle_a_nul() -> None:
    assert encode_error(0, "a\0b") == b"\0\5\0\0a?b\0"


# --- cross-check against tftpy's packet layer ------------------------------------------------

_name = st.text(string.ascii_letters + string.digits + "._-/", min_size=1, max_size=60)
_opt_name = st.text(string.ascii_lowercase, min_size=1, max_size=12)
_opt_value = st.text(string.digits + string.ascii_letters, min_size=1, max_size=8)
_options = st.dictionaries(_opt_name, _opt_value, max_size=5).map(lambda d: tuple(d.items()))
_block = st.integers(0, 65535)
_factory = TftpPacketFactory()


@given(_name, _options)
def test_rrq_agrees_with_tftpy(filename: str, options: tuple[tuple[str, str], ...]) -> None:
    ours = encode_request(Opcode.RRQ, filename, "octet", options)
    theirs = TftpPacketRRQ()
    theirs.filename, theirs.mode, theirs.options = filename, "octet", dict(options)
    assert ours == theirs.encode().buffer
    parsed = _factory.parse(ours)
    assert (parsed.filename, parsed.mode, parsed.options) == (filename, "octet", dict(options))
    assert decode(ours) == Request(Opcode.RRQ, filename, "octet", options)


@given(_block, st.binary(max_size=1468))
def test_data_agrees_with_tftpy(block: int, payload: bytes) -> None:
    theirs = TftpPacketDAT()
    theirs.blocknumber, theirs.data = block, payload
    assert encode_data(block, payload) == theirs.encode().buffer
    parsed = _factory.parse(encode_data(block, payload))
    assert (parsed.blocknumber, parsed.data) == (block, payload)
    assert decode(theirs.buffer) == Data(block, payload)


@given(_block)
def test_ack_agrees_with_tftpy(block: int) -> None:
    theirs = TftpPacketACK()
    theirs.blocknumber = block
    assert encode_ack(block) == theirs.encode().buffer
    assert decode(theirs.buffer) == Ack(block)


@given(st.integers(1, 8))
def test_error_agrees_with_tftpy(code: int) -> None:
    theirs = TftpPacketERR()
    theirs.errorcode = code
    message = theirs.errmsgs[code].decode()
    assert encode_error(code, message) == theirs.encode().buffer
    assert decode(theirs.buffer) == Error(code, message)
    parsed = _factory.parse(encode_error(code, message))
    assert (parsed.errorcode, parsed.errmsg) == (code, message.encode())


@given(_options.filter(bool))
def test_oack_agrees_with_tftpy(options: tuple[tuple[str, str], ...]) -> None:
    theirs = TftpPacketOACK()
    theirs.options = dict(options)
    assert encode_oack(options) == theirs.encode().buffer
    assert _factory.parse(encode_oack(options)).options == dict(options)
    assert decode(theirs.buffer) == OptionAck(options)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_packet_error(wire: bytes) -> None:
    # Anything else escaping (IndexError, ValueError, UnicodeError) would fail this test.
    with contextlib.suppress(PacketError):
        decode(wire)
