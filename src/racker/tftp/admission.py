"""Whether a TFTP request is served, and how (layer 1: no sockets, no files of its own).

``admit`` takes a decoded request and answers ``Accept`` (the opened file and the options
negotiated for it) or ``Refuse`` (the TFTP error for the client and the reason for the log and
the event). The boot policy and the file lookup are callables the server hands in; they are
asked in that order and only when the request got that far, so a write request never reaches
the policy and a client the policy refuses never makes the server look at the disk.

What the client is told stays generic for the errors RFC 1350 names; the reason, which may
hold real paths, goes only to the log and the event.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from racker.errors import PacketError
from racker.tftp.packets import ErrorCode, Opcode, Request
from racker.tftp.transfer import MODES, BlockSource, Negotiated, TransferLimits, negotiate


class FileRefused(PacketError):
    """A read request the server will not serve; ``code`` is the TFTP error to answer with."""

    def __init__(self, code: ErrorCode, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


class Opened(Protocol):
    """A file opened for one transfer (``files.OpenedFile``); closed when the transfer ends."""

    @property
    def source(self) -> BlockSource: ...

    def close(self) -> None: ...


# ``open_file(filename, mode)``: the opened file, or ``FileRefused`` saying why not.
OpenFile = Callable[[str, str], Opened]
# ``may_fetch(client_ip)``: the boot policy's answer (False when it failed).
MayFetch = Callable[[str], bool]


@dataclass(frozen=True)
class Accept:
    opened: Opened
    negotiated: Negotiated


@dataclass(frozen=True)
class Refuse:
    code: ErrorCode
    message: str  # what the client is told
    reason: str  # what the log and the transfer-failed event say


Decision = Accept | Refuse

# What a refused client is told for the errors RFC 1350 names: the log gets the detail.
CLIENT_TEXT = {
    ErrorCode.FILE_NOT_FOUND: "File not found",
    ErrorCode.ACCESS_VIOLATION: "Access violation",
    ErrorCode.ILLEGAL_OPERATION: "Illegal TFTP operation",
}


def refuse(code: ErrorCode, reason: str) -> Refuse:
    return Refuse(code, CLIENT_TEXT.get(code, reason), reason)


BUSY = "Server busy, try again later"


@dataclass(frozen=True)
class Load:
    """Transfers running now, in all and from the requesting client, and the caps on each.
    A ``stranger`` (a client that is none of the rack's machines) may run ``cap_per_client``
    at once, and strangers together ``cap_strangers`` of the total, so a flood from outside
    nodes.csv leaves room for the rack's own; the rack's machines meet only the total."""

    running: int = 0
    from_client: int = 0
    cap: int = 1 << 30
    cap_per_client: int = 1 << 30
    stranger: bool = False
    cap_strangers: int = 1 << 30


def admit(
    request: Request,
    client: str,
    limits: TransferLimits,
    may_fetch: MayFetch,
    open_file: OpenFile,
    load: Load | None = None,
) -> Decision:
    """Serve ``request`` from ``client`` (its IP address), or refuse it (see the module).

    A full server refuses before it opens anything: a stranger's own cap first (one flooding
    requests meets it long before the rest of the rack does), then strangers' share of the
    total, then the total."""
    if load is not None:
        if load.stranger and load.from_client >= load.cap_per_client:
            reason = f"busy: {load.from_client} transfers to {client} already (per-client cap)"
            return Refuse(ErrorCode.NOT_DEFINED, BUSY, reason)
        if load.stranger and load.running >= load.cap_strangers:
            reason = (
                f"busy: {load.running} transfers at once (the share of clients outside nodes.csv)"
            )
            return Refuse(ErrorCode.NOT_DEFINED, BUSY, reason)
        if load.running >= load.cap:
            reason = f"busy: {load.running} transfers at once (the server's cap)"
            return Refuse(ErrorCode.NOT_DEFINED, BUSY, reason)
    if request.opcode == Opcode.WRQ:
        return refuse(ErrorCode.ACCESS_VIOLATION, "write requests are refused (read-only server)")
    if request.mode not in MODES:
        return refuse(ErrorCode.ILLEGAL_OPERATION, f"transfer mode {request.mode!r} not supported")
    if not may_fetch(client):
        return refuse(ErrorCode.ACCESS_VIOLATION, "boot policy: no boot files for this client")
    try:
        opened = open_file(request.filename, request.mode)
    except FileRefused as exc:
        return refuse(exc.code, exc.message)
    return Accept(opened, negotiate(request.options, opened.source.size, limits))
