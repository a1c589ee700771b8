"""TFTP packet codec (layer 1: bytes in, packet objects out, and back).

A lean codec (plain byte slicing) instead of tftpy's packet layer: tftpy formats a ``logging.debug``
line and builds a struct format string for every packet, which costs more than the rest of a
lock-step transfer. ``tests/unit/tftp/test_packets.py`` cross-checks this codec against
``tftpy.TftpPacketFactory`` with hypothesis, and ``bench/tftp.py`` prints both codecs' speed.

Wire formats: RFC 1350 section 5 (RRQ/WRQ/DATA/ACK/ERROR) and RFC 2347 (options after the mode
of a request; OACK = opcode 6 followed by name/value pairs). Every string is NUL-terminated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from racker.errors import PacketError


class Opcode(enum.IntEnum):
    RRQ = 1
    WRQ = 2
    DATA = 3
    ACK = 4
    ERROR = 5
    OACK = 6


class ErrorCode(enum.IntEnum):
    """RFC 1350 appendix error codes, plus 8 from RFC 2347."""

    NOT_DEFINED = 0
    FILE_NOT_FOUND = 1
    ACCESS_VIOLATION = 2
    DISK_FULL = 3
    ILLEGAL_OPERATION = 4
    UNKNOWN_TID = 5
    FILE_EXISTS = 6
    NO_SUCH_USER = 7
    OPTION_NEGOTIATION = 8


Options = tuple[tuple[str, str], ...]  # (name, value) in wire order, names as the peer spelt them


@dataclass(frozen=True)
class Request:
    opcode: Opcode  # RRQ or WRQ
    filename: str
    mode: str  # lower-cased: "octet", "netascii", "mail", or whatever the peer sent
    options: Options = ()


@dataclass(frozen=True)
class Data:
    block: int
    payload: bytes


@dataclass(frozen=True)
class Ack:
    block: int


@dataclass(frozen=True)
class Error:
    code: int
    message: str


@dataclass(frozen=True)
class OptionAck:
    options: Options


Packet = Request | Data | Ack | Error | OptionAck

# Longest filename we accept in a request; PXE loaders and kernel paths are far shorter, and a
# name longer than this only serves to probe the server.
MAX_FILENAME = 1024


def _strings(body: bytes, what: str, keep: int) -> list[bytes]:
    """Split NUL-terminated strings; trailing NUL padding (some old PXE ROMs send it) is ignored."""
    if not body.endswith(b"\0"):
        raise PacketError(f"{what}: last string is not NUL-terminated", "peer sent a cut packet")
    parts = body[:-1].split(b"\0")
    while len(parts) > keep and parts[-1] == b"":
        parts.pop()
    return parts


def _text(raw: bytes, what: str) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        raise PacketError(f"{what} is not ASCII: {raw[:40]!r}") from None


def decode(data: bytes) -> Packet:
    """Decode one datagram; raise ``PacketError`` naming what is wrong with it."""
    if len(data) < 4:
        raise PacketError(f"TFTP packet too short ({len(data)} bytes)", "at least 4 bytes")
    opcode = (data[0] << 8) | data[1]
    if opcode == Opcode.ACK:
        return Ack((data[2] << 8) | data[3])  # trailing bytes ignored, like tftpy and tftp-hpa
    if opcode == Opcode.DATA:
        return Data((data[2] << 8) | data[3], bytes(data[4:]))
    if opcode in (Opcode.RRQ, Opcode.WRQ):
        name = "RRQ" if opcode == Opcode.RRQ else "WRQ"
        parts = _strings(bytes(data[2:]), name, 2)
        if len(parts) < 2:
            raise PacketError(f"{name}: no transfer mode after the filename")
        raw_name, raw_mode, rest = parts[0], parts[1], parts[2:]
        if not raw_name:
            raise PacketError(f"{name}: empty filename")
        if len(raw_name) > MAX_FILENAME:
            raise PacketError(f"{name}: filename longer than {MAX_FILENAME} bytes")
        try:
            filename = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise PacketError(f"{name}: filename is not UTF-8: {raw_name[:40]!r}") from None
        mode = _text(raw_mode, f"{name} mode").lower()
        return Request(Opcode(opcode), filename, mode, _options(rest, name))
    if opcode == Opcode.ERROR:
        code = (data[2] << 8) | data[3]
        message = bytes(data[4:]).split(b"\0", 1)[0]  # a missing NUL is tolerated
        return Error(code, message.decode("ascii", errors="replace"))
    if opcode == Opcode.OACK:
        return OptionAck(_options(_strings(bytes(data[2:]), "OACK", 0), "OACK"))
    raise PacketError(f"unknown TFTP opcode {opcode}", "valid opcodes are 1-6")


def _options(parts: list[bytes], what: str) -> Options:
    if len(parts) % 2:
        raise PacketError(f"{what}: option {parts[-1][:40]!r} has no value")
    pairs = []
    for i in range(0, len(parts), 2):
        name = _text(parts[i], f"{what} option name")
        if not name:
            raise PacketError(f"{what}: empty option name")
        pairs.append((name, _text(parts[i + 1], f"{what} option {name!r} value")))
    return tuple(pairs)


def _pack_options(options: Options) -> bytes:
    return b"".join(f"{n}\0{v}\0".encode("ascii") for n, v in options)


def encode_request(
    opcode: Opcode, filename: str, mode: str = "octet", options: Options = ()
) -> bytes:
    head = opcode.to_bytes(2, "big") + filename.encode("utf-8") + b"\0"
    return head + mode.encode("ascii") + b"\0" + _pack_options(options)


def encode_data(block: int, payload: bytes) -> bytes:
    return b"\0\3" + (block & 0xFFFF).to_bytes(2, "big") + payload


def encode_ack(block: int) -> bytes:
    return b"\0\4" + (block & 0xFFFF).to_bytes(2, "big")


def encode_error(code: int, message: str) -> bytes:
    text = message.encode("ascii", errors="replace").replace(b"\0", b"?")
    return b"\0\5" + code.to_bytes(2, "big") + text + b"\0"


def encode_oack(options: Options) -> bytes:
    return b"\0\6" + _pack_options(options)


def encode(packet: Packet) -> bytes:
    """Encode any packet object (the hot paths call the ``encode_*`` functions directly)."""
    if isinstance(packet, Request):
        return encode_request(packet.opcode, packet.filename, packet.mode, packet.options)
    if isinstance(packet, Data):
        return encode_data(packet.block, packet.payload)
    if isinstance(packet, Ack):
        return encode_ack(packet.block)
    if isinstance(packet, Error):
        return encode_error(packet.code, packet.message)
    return encode_oack(packet.options)
