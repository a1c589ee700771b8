"""Replay the TFTP half of real firmware captures through the transfer state machine.

The pcaps in fixtures/ are the TFTP frames of /work/shared/fixtures/firmware (OVMF's PxeBc and
the iPXE ROM against dnsmasq 2.90; DATA frames cut to 400 bytes, lengths from the UDP header).
Each client packet is fed to a ``Transfer``; with windows disabled, racker must answer exactly as
dnsmasq did (same OACK values, same block numbers and sizes); with windows allowed, OVMF gets the
windowsize 4 it asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from scapy.layers.inet import UDP
from scapy.utils import rdpcap

from racker.tftp.packets import Data, OptionAck, Request, decode
from racker.tftp.transfer import BytesSource, Status, Transfer, TransferLimits

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Capture:
    request: Request
    client: list[bytes] = field(default_factory=list)  # after the request, in order
    server: list[tuple[int, int, int]] = field(default_factory=list)  # (opcode, block, length)
    oack: bytes = b""  # dnsmasq's OACK


def transfers(pcap: str) -> list[Capture]:
    """The captured transfers, keyed by the client's port, in order of their request."""
    found: dict[int, Capture] = {}
    for frame in rdpcap(str(FIXTURES / pcap)):
        udp = frame[UDP]
        payload, length = bytes(udp.payload), udp.len - 8
        if udp.dport == 69:
            request = decode(payload)
            assert isinstance(request, Request)
            found[udp.sport] = Capture(request)
        elif udp.sport in found:
            found[udp.sport].client.append(payload)
        elif udp.dport in found:
            opcode, block = payload[1], (payload[2] << 8) | payload[3]
            if opcode == 6:
                found[udp.dport].oack = payload
            found[udp.dport].server.append((opcode, block if opcode in (3, 4) else 0, length))
    return list(found.values())


def replay(capture: Capture, size: int, limits: TransferLimits) -> tuple[Transfer, list[bytes]]:
    transfer = Transfer(BytesSource(bytes(size)), capture.request.options, limits)
    sent = transfer.start(0.0)
    for datagram in capture.client:
        sent += transfer.on_datagram(datagram, 0.0)
    return transfer, sent


def shape(datagrams: list[bytes]) -> list[tuple[int, int, int]]:
    return [(d[1], (d[2] << 8) | d[3] if d[1] in (3, 4) else 0, len(d)) for d in datagrams]


LIKE_DNSMASQ = TransferLimits(max_blksize=1468, max_windowsize=1)


@pytest.mark.parametrize(
    ("pcap", "size", "options", "status"),
    [
        # OVMF size probe: tsize/blksize/windowsize, then ERROR 8 once it has the size
        (
            "ovmf-native-pxe-virtio-tftp.pcap",
            173792,
            (("tsize", "0"), ("blksize", "1468"), ("windowsize", "4")),
            Status.FAILED,
        ),
        # OVMF download: 118 x 1468 + 568, lock-step against dnsmasq
        (
            "ovmf-native-pxe-virtio-tftp.pcap",
            173792,
            (("blksize", "1468"), ("windowsize", "4")),
            Status.FINISHED,
        ),
        # iPXE ROM fetching undionly.kpxe: 51 x 1432 + 1181
        (
            "ipxe-chainload-undionly-tftp.pcap",
            74213,
            (("blksize", "1432"), ("tsize", "0")),
            Status.FINISHED,
        ),
    ],
)
def test_racker_answers_the_captured_clients_like_dnsmasq(
    pcap: str, size: int, options: tuple[tuple[str, str], ...], status: Status
) -> None:
    [capture] = [c for c in transfers(pcap) if c.request.options == options]
    transfer, sent = replay(capture, size, LIKE_DNSMASQ)
    assert transfer.status is status
    ours, theirs = decode(sent[0]), decode(capture.oack)
    assert isinstance(ours, OptionAck)
    assert isinstance(theirs, OptionAck)
    # the same option values; dnsmasq leaves windowsize out where racker says "windowsize 1"
    assert {k: v for k, v in ours.options if k != "windowsize"} == dict(theirs.options)
    # then the same datagrams: block numbers and sizes, nothing more, nothing less
    assert shape(sent)[1:] == capture.server[1:]
    assert len(capture.server) > 1 or status is Status.FAILED


def test_ovmf_download_gets_its_window_from_racker() -> None:
    [_, download] = transfers("ovmf-native-pxe-virtio-tftp.pcap")
    transfer = Transfer(BytesSource(bytes(173792)), download.request.options, TransferLimits())
    [oack] = transfer.start(0.0)
    assert decode(oack) == OptionAck((("blksize", "1468"), ("windowsize", "4")))
    first = transfer.on_datagram(b"\0\4\0\0", 0.0)
    assert [decode(d).block for d in first] == [1, 2, 3, 4]  # type: ignore[union-attr]
    assert all(isinstance(decode(d), Data) for d in first)
