"""A lean BOOTP/DHCPv4 message parser and encoder (layer 1: pure).

This is the hot path of the DHCP server: one ``struct`` unpack for the fixed header and one
pass over the options. It is deliberately not a general packet model (tests use scapy for
that and check that both agree on every reply racker builds).

Decoding follows RFC 2131 §4.1 and RFC 2132 §9.3: options are read from the options field
first and then, if option 52 (overload) says so, from ``file`` and then ``sname``. An option
that occurs more than once is concatenated (RFC 3396). Anything malformed raises
``PacketError`` with the reason; callers drop the packet.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from racker.dhcp.options import (
    FILE_LEN,
    FILE_OFFSET,
    MAGIC_COOKIE,
    MIN_MESSAGE_LEN,
    OPTIONS_OFFSET,
    OVERLOAD_FILE,
    OVERLOAD_SNAME,
    SNAME_LEN,
    SNAME_OFFSET,
    Opt,
)
from racker.errors import PacketError

ZERO4 = b"\0\0\0\0"
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s4s")  # HEADER_LEN, then the cookie
_PAD = Opt.PAD.value
_END = Opt.END.value
_OVERLOAD = Opt.OVERLOAD.value
_PADDING = bytes(MIN_MESSAGE_LEN)


@dataclass(slots=True)
class Message:
    """One DHCP message. Addresses are the raw 4 network-order bytes (cheap to compare).

    ``options`` maps code to value in wire order of first appearance; the encoder writes
    them in dict order, so the builder of a reply decides the order.
    """

    op: int
    xid: int
    chaddr: bytes = b""  # the hardware address only (``hlen`` bytes)
    htype: int = 1
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: bytes = ZERO4
    yiaddr: bytes = ZERO4
    siaddr: bytes = ZERO4
    giaddr: bytes = ZERO4
    sname: bytes = b""  # up to the first NUL; empty when the field carried options
    file: bytes = b""
    options: dict[int, bytes] = field(default_factory=dict)


def decode(data: bytes) -> Message:
    """Parse one DHCP message (the UDP payload)."""
    size = len(data)
    if size < OPTIONS_OFFSET:
        raise PacketError(f"truncated DHCP message: {size} bytes, at least {OPTIONS_OFFSET} needed")
    (op, htype, hlen, hops, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr, chaddr, sname,
     bootfile, cookie) = _HEADER.unpack_from(data)  # fmt: skip
    if cookie != MAGIC_COOKIE:
        raise PacketError(f"bad magic cookie {cookie.hex()} (want {MAGIC_COOKIE.hex()}): not DHCP")
    if hlen > 16:
        raise PacketError(f"hardware address length {hlen} is more than the 16-byte chaddr field")
    options: dict[int, bytes] = {}
    _parse_area(data, OPTIONS_OFFSET, size, options, area="options field", top=True)
    overload = options.get(_OVERLOAD)
    if overload is not None:
        if len(overload) != 1 or not 1 <= overload[0] <= 3:
            raise PacketError(f"option 52 (overload) has an invalid value {overload.hex()}")
        # RFC 2131 §4.1: the options field first, then 'file', then 'sname'.
        if overload[0] & OVERLOAD_FILE:
            _parse_area(
                data, FILE_OFFSET, FILE_OFFSET + FILE_LEN, options, area="file field", top=False
            )
            bootfile = b""
        if overload[0] & OVERLOAD_SNAME:
            _parse_area(
                data, SNAME_OFFSET, SNAME_OFFSET + SNAME_LEN, options, area="sname field", top=False
            )
            sname = b""
    # Positional, in field order: keyword arguments cost more, and this runs per request.
    return Message(
        op,
        xid,
        chaddr[:hlen],
        htype,
        hops,
        secs,
        flags,
        ciaddr,
        yiaddr,
        siaddr,
        giaddr,
        sname.split(b"\0", 1)[0],
        bootfile.split(b"\0", 1)[0],
        options,
    )


def _parse_area(
    data: bytes, pos: int, end: int, options: dict[int, bytes], *, area: str, top: bool
) -> None:
    while pos < end:
        code = data[pos]
        if code == _PAD:
            pos += 1
            continue
        if code == _END:
            return
        if pos + 1 >= end:
            raise PacketError(f"option {code} in the {area} is cut off before its length byte")
        length = data[pos + 1]
        start = pos + 2
        pos = start + length
        if pos > end:
            raise PacketError(
                f"option {code} in the {area} claims {length} bytes but only {end - start} remain"
            )
        if code == _OVERLOAD and not top:
            # An overload option inside an overloaded field would make the fields point
            # at each other (a loop); RFC 2132 §9.3 allows it only in the options field.
            raise PacketError(f"option 52 (overload) inside the {area}: overload loop")
        value = data[start:pos]
        previous = options.get(code)
        # RFC 3396: repeated instances of an option are one value, concatenated in order.
        options[code] = value if previous is None else previous + value
    # RFC 2131 requires an END option; clients that stop exactly at the end of the datagram
    # (or fill the field) are accepted, as dnsmasq and ISC dhcpd do.


def encode(msg: Message) -> bytes:
    """Encode ``msg`` with its options in dict order, padded to the BOOTP minimum of 300."""
    sname = msg.sname[:SNAME_LEN]
    bootfile = msg.file[:FILE_LEN]
    # One bytearray grown in place: cheaper than a list of two parts per option joined at the
    # end (encoding is on every new reply's path).
    out = bytearray(
        _HEADER.pack(
            msg.op,
            msg.htype,
            len(msg.chaddr),
            msg.hops,
            msg.xid,
            msg.secs,
            msg.flags,
            msg.ciaddr,
            msg.yiaddr,
            msg.siaddr,
            msg.giaddr,
            msg.chaddr,
            sname,
            bootfile,
            MAGIC_COOKIE,
        )
    )
    for code, value in msg.options.items():
        length = len(value)
        if length <= 255:
            out.append(code)
            out.append(length)
            out += value
        else:
            out += encode_option(code, value)
    out.append(_END)
    size = len(out)
    if size < MIN_MESSAGE_LEN:
        out += _PADDING[size:]
    return bytes(out)


def encode_option(code: int, value: bytes) -> bytes:
    """One option; values over 255 bytes become several instances (RFC 3396 §5)."""
    length = len(value)
    if length <= 255:
        return bytes((code, length)) + value
    return b"".join(
        bytes((code, len(chunk))) + chunk
        for chunk in (value[i : i + 255] for i in range(0, length, 255))
    )


def encoded_size(options: dict[int, bytes]) -> int:
    """Bytes ``encode`` needs for a message with these options, before padding."""
    size = OPTIONS_OFFSET + 1  # header, cookie, END
    for value in options.values():
        size += len(value) + 2 * max(1, -(-len(value) // 255))
    return size
