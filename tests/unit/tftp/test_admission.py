"""Whether a TFTP request is served, and how: a table of (request, settings, policy, file) rows
and the decision ``admit`` takes, with what it asked the policy and the file lookup."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from racker.tftp.admission import BUSY, Accept, FileRefused, Load, Refuse, admit
from racker.tftp.files import split_filename
from racker.tftp.packets import ErrorCode, Opcode, Options, Request
from racker.tftp.settings import Capacity, capacity_for
from racker.tftp.transfer import BytesSource, Negotiated, TransferLimits, max_blksize_for_mtu

CLIENT = "10.99.0.2"
SIZE = 300_123
LAN = TransferLimits(max_blksize=max_blksize_for_mtu(1500))  # racker.yaml's defaults, MTU 1500
SMALL = TransferLimits(max_blksize=max_blksize_for_mtu(576), max_windowsize=8, timeout=2.0)


@dataclass
class StubFile:
    source: BytesSource
    closed: bool = field(default=False)

    def close(self) -> None:
        self.closed = True


def rrq(options: Options = (), name: str = "undionly.kpxe", mode: str = "octet") -> Request:
    return Request(Opcode.RRQ, name, mode, options)


def refused(code: ErrorCode, message: str) -> FileRefused:
    return FileRefused(code, message)


def traversal(name: str) -> FileRefused:
    """What the real name check says about ``name`` (FileRoots.open starts with it)."""
    try:
        split_filename(name)
    except FileRefused as exc:
        return exc
    raise AssertionError(f"{name!r} is not refused")


def accept(blksize: int = 512, windowsize: int = 1, timeout: float = 1.0,
           oack: Options = ()) -> Negotiated:  # fmt: skip
    return Negotiated(blksize, windowsize, timeout, oack)


AV, NF, IO = ErrorCode.ACCESS_VIOLATION, ErrorCode.FILE_NOT_FOUND, ErrorCode.ILLEGAL_OPERATION
OPENED = ("policy", "open")

# (case, request, limits, policy says, the file: its size or the lookup's refusal,
#  expected: Negotiated for an accepted request or the Refuse, what was asked)
ROWS = [
    ("plain RFC 1350 read", rrq(), LAN, True, SIZE, accept(), OPENED),
    ("netascii is a mode we serve", rrq(mode="netascii"), LAN, True, SIZE, accept(), OPENED),
    ("a write request", Request(Opcode.WRQ, "upload.bin", "octet"), LAN, True, SIZE,
     Refuse(AV, "Access violation", "write requests are refused (read-only server)"), ()),
    ("mail mode (obsolete)", rrq(mode="mail"), LAN, True, SIZE,
     Refuse(IO, "Illegal TFTP operation", "transfer mode 'mail' not supported"), ()),
    ("an unknown mode", rrq(mode="binary"), LAN, True, SIZE,
     Refuse(IO, "Illegal TFTP operation", "transfer mode 'binary' not supported"), ()),
    ("the boot policy says no", rrq(), LAN, False, SIZE,
     Refuse(AV, "Access violation", "boot policy: no boot files for this client"), ("policy",)),
    ("a bad mode is refused before the policy is asked", rrq(mode="mail"), LAN, False, SIZE,
     Refuse(IO, "Illegal TFTP operation", "transfer mode 'mail' not supported"), ()),
    ("'..' leaves the root", rrq(name="../outside/secret"), LAN, True,
     traversal("../outside/secret"),
     Refuse(AV, "Access violation", "'..' in filename '../outside/secret'"), OPENED),
    ("DOS-style '..'", rrq(name="a\\..\\..\\secret"), LAN, True, traversal("a\\..\\..\\secret"),
     Refuse(AV, "Access violation", "'..' in filename 'a\\\\..\\\\..\\\\secret'"), OPENED),
    ("a symlink out of the root: the real path stays in the log",
     rrq(name="escape"), LAN, True,
     refused(AV, "'escape' leads out of /srv/tftp (to /etc/secret)"),
     Refuse(AV, "Access violation", "'escape' leads out of /srv/tftp (to /etc/secret)"), OPENED),
    ("not found", rrq(name="pxelinux.0"), LAN, True, refused(NF, "'pxelinux.0' not found"),
     Refuse(NF, "File not found", "'pxelinux.0' not found"), OPENED),
    ("too large for netascii: error 0 says why", rrq(mode="netascii"), LAN, True,
     refused(ErrorCode.NOT_DEFINED, "'big' is too large for netascii (20000000 bytes)"),
     Refuse(ErrorCode.NOT_DEFINED, "'big' is too large for netascii (20000000 bytes)",
            "'big' is too large for netascii (20000000 bytes)"), OPENED),
    ("unknown options are ignored", rrq((("multicast", ""), ("rollover", "0"))), LAN, True,
     SIZE, accept(), OPENED),
    ("tsize: the OACK carries the size", rrq((("tsize", "0"),)), LAN, True, SIZE,
     accept(oack=(("tsize", str(SIZE)),)), OPENED),
    ("blksize within the MTU", rrq((("blksize", "1024"),)), LAN, True, SIZE,
     accept(blksize=1024, oack=(("blksize", "1024"),)), OPENED),
    ("blksize is capped at the MTU", rrq((("blksize", "65464"),)), LAN, True, SIZE,
     accept(blksize=1468, oack=(("blksize", "1468"),)), OPENED),
    ("blksize capped at a small MTU", rrq((("blksize", "1468"),)), SMALL, True, SIZE,
     accept(blksize=544, timeout=2.0, oack=(("blksize", "544"),)), OPENED),
    ("blksize 8 is the least (RFC 2348)", rrq((("blksize", "8"),)), LAN, True, SIZE,
     accept(blksize=8, oack=(("blksize", "8"),)), OPENED),
    ("blksize below 8 is ignored", rrq((("blksize", "7"),)), LAN, True, SIZE, accept(), OPENED),
    ("a value that is no number is ignored", rrq((("blksize", "1e3"), ("tsize", "x"))), LAN,
     True, SIZE, accept(), OPENED),
    ("names match without case, answered as spelt", rrq((("BlkSize", "1468"),)), LAN, True,
     SIZE, accept(blksize=1468, oack=(("BlkSize", "1468"),)), OPENED),
    ("the first of a repeated option wins", rrq((("blksize", "1024"), ("blksize", "512"))), LAN,
     True, SIZE, accept(blksize=1024, oack=(("blksize", "1024"),)), OPENED),
    ("timeout is echoed, we wait the shorter", rrq((("timeout", "6"),)), LAN, True, SIZE,
     accept(timeout=1.0, oack=(("timeout", "6"),)), OPENED),
    ("timeout shorter than ours", rrq((("timeout", "1"),)), SMALL, True, SIZE,
     accept(timeout=1.0, oack=(("timeout", "1"),)), OPENED),
    ("timeout out of 1..255 is ignored", rrq((("timeout", "0"), ("Timeout", "256"))), LAN, True,
     SIZE, accept(), OPENED),
    ("windowsize granted", rrq((("windowsize", "16"),)), LAN, True, SIZE,
     accept(windowsize=16, oack=(("windowsize", "16"),)), OPENED),
    ("windowsize lowered to the configured most", rrq((("windowsize", "1000"),)), SMALL, True,
     SIZE, accept(windowsize=8, timeout=2.0, oack=(("windowsize", "8"),)), OPENED),
    ("windowsize 0 is ignored", rrq((("windowsize", "0"),)), LAN, True, SIZE, accept(), OPENED),
    ("windowsize over 65535 is ignored", rrq((("windowsize", "65536"),)), LAN, True, SIZE,
     accept(), OPENED),
    ("OVMF's probe: answered in request order",
     rrq((("tsize", "0"), ("blksize", "1468"), ("windowsize", "4"))), LAN, True, SIZE,
     accept(blksize=1468, windowsize=4,
            oack=(("tsize", str(SIZE)), ("blksize", "1468"), ("windowsize", "4"))), OPENED),
    ("a refused client is refused whatever its options", rrq((("blksize", "1468"),)), LAN,
     False, SIZE,
     Refuse(AV, "Access violation", "boot policy: no boot files for this client"), ("policy",)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "request_", "limits", "allowed", "file", "expected", "asked"),
    ROWS,
    ids=[row[0] for row in ROWS],
)
def test_admit(
    case: str,
    request_: Request,
    limits: TransferLimits,
    allowed: bool,
    file: int | FileRefused,
    expected: Negotiated | Refuse,
    asked: tuple[str, ...],
) -> None:
    calls: list[str] = []
    stub = StubFile(BytesSource(b"x" * file)) if isinstance(file, int) else None

    def may_fetch(ip: str) -> bool:
        assert ip == CLIENT
        calls.append("policy")
        return allowed

    def open_file(name: str, mode: str) -> StubFile:
        assert (name, mode) == (request_.filename, request_.mode)
        calls.append("open")
        if isinstance(file, FileRefused):
            raise file
        assert stub is not None
        return stub

    decision = admit(request_, CLIENT, limits, may_fetch, open_file)
    if isinstance(expected, Refuse):
        assert decision == expected, case
    else:
        assert stub is not None
        assert decision == Accept(stub, expected), case
    assert tuple(calls) == asked, case


def test_an_accepted_file_is_left_open_for_the_transfer() -> None:
    stub = StubFile(BytesSource(b"boot"))
    decision = admit(rrq(), CLIENT, LAN, lambda _ip: True, lambda _n, _m: stub)
    assert isinstance(decision, Accept)
    assert decision.opened is stub and not stub.closed


# (case, load, expected reason or None for accepted)
LOADS = [
    ("idle", Load(0, 0, 400, 8, True, 300), None),
    ("room in all and for the client", Load(299, 7, 400, 8, True, 300), None),
    ("a stranger's cap", Load(10, 8, 400, 8, True, 300), "busy: 8 transfers to 10.99.0.2"),
    ("a rack machine has no cap of its own", Load(10, 100, 400, 8, False, 300), None),
    ("the server's cap", Load(400, 0, 400, 8), "busy: 400 transfers at once"),
    (
        "both: the client's cap is said first",
        Load(400, 8, 400, 8, True, 300),
        "busy: 8 transfers to",
    ),
    ("a stranger at strangers' share", Load(300, 0, 400, 8, True, 300), "busy: 300 transfers at"),
    ("a rack machine past strangers' share", Load(300, 0, 400, 8, False, 300), None),
    ("a rack machine at the cap", Load(400, 0, 400, 8, False, 300), "busy: 400 transfers at"),
]


@pytest.mark.parametrize(("case", "load", "reason"), LOADS, ids=[r[0] for r in LOADS])
def test_a_full_server_refuses_before_it_asks_or_opens_anything(
    case: str, load: Load, reason: str | None
) -> None:
    calls: list[str] = []

    def may_fetch(_ip: str) -> bool:
        calls.append("policy")
        return True

    def open_file(_name: str, _mode: str) -> StubFile:
        calls.append("open")
        return StubFile(BytesSource(b"boot"))

    decision = admit(rrq(), CLIENT, LAN, may_fetch, open_file, load)
    if reason is None:
        assert isinstance(decision, Accept) and calls == ["policy", "open"]
    else:
        assert isinstance(decision, Refuse) and calls == []
        assert decision.code == ErrorCode.NOT_DEFINED and decision.message == BUSY
        assert decision.reason.startswith(reason)


@pytest.mark.parametrize(
    ("open_files", "wanted", "expected"),
    [
        (1024, Capacity(400, 8), Capacity(256, 8)),  # systemd's default soft limit
        (65536, Capacity(400, 8), Capacity(400, 8)),
        (300, Capacity(400, 8), Capacity(14, 8)),
        (100, Capacity(400, 8), Capacity(1, 1)),  # never zero: one transfer still runs
    ],
)
def test_capacity_leaves_descriptors_for_the_rest(
    open_files: int, wanted: Capacity, expected: Capacity
) -> None:
    assert capacity_for(open_files, wanted) == expected
