"""Many transfers from one shared port (tftp/shared.py) on 127.0.0.1: interleaved lock-step
and windowed transfers under injected loss and duplication, rollover, strangers."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
from pathlib import Path

from racker.events import Event, TftpEvent
from racker.tftp.packets import (
    Data,
    Error,
    OptionAck,
    decode,
    encode_ack,
    encode_error,
    encode_request,
)
from racker.tftp.server import TftpServer
from racker.tftp.settings import TftpSettings
from racker.tftp.transfer import TransferLimits


def lossy_fetch(
    port: int, name: str, options: tuple[tuple[str, str], ...], seed: int, loss: float
) -> tuple[bytes, set[int]]:
    """A lock-step or windowed client that drops ``loss`` of the DATA it gets and sends every
    ACK twice now and then (the sorcerer's apprentice's trigger). Returns the file and the
    server ports its DATA came from."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible loss pattern, not a secret
    opts = dict(options)
    blksize, window = int(opts.get("blksize", "512")), int(opts.get("windowsize", "1"))
    received, ports = bytearray(), set()
    expected, in_window = 1, 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        request = encode_request(1, name, "octet", options)  # type: ignore[arg-type]
        sock.sendto(request, ("127.0.0.1", port))
        peer: tuple[str, int] | None = None
        last_ack = b""
        for _ in range(200_000):
            try:
                raw, addr = sock.recvfrom(70_000)
            except TimeoutError:
                if peer is None:
                    sock.sendto(request, ("127.0.0.1", port))
                else:  # RFC 7440: ACK the last block in order; the window starts after it
                    last_ack = encode_ack((expected - 1) & 0xFFFF) if expected > 1 else last_ack
                    sock.sendto(last_ack, peer)
                    in_window = 0
                continue
            peer = peer or addr
            assert addr == peer, "DATA from another port than the first one"
            ports.add(addr[1])
            packet = decode(raw)
            if isinstance(packet, OptionAck):
                last_ack = encode_ack(0)
                sock.sendto(last_ack, peer)
                continue
            assert isinstance(packet, Data), packet
            if rng.random() < loss:
                continue  # lost on the way
            if packet.block != expected & 0xFFFF:
                continue  # a gap or a duplicate: wait for the window to be sent again
            received += packet.payload
            expected += 1
            in_window += 1
            last = len(packet.payload) < blksize
            if in_window == window or last:
                in_window = 0
                last_ack = encode_ack(packet.block)
                sock.sendto(last_ack, peer)
                if rng.random() < 0.1:
                    sock.sendto(last_ack, peer)  # a duplicate ACK
            if last:
                return bytes(received), ports
    raise AssertionError("the transfer did not end")


def serve(root: Path, events: list[Event]) -> TftpServer:
    limits = TransferLimits(max_blksize=1468, timeout=0.1, retries=20)
    settings = TftpSettings((root,), limits=limits, single_port=True)
    return TftpServer("127.0.0.1", settings, events.append, port=0)


def test_interleaved_transfers_with_loss_share_one_port(tmp_path: Path) -> None:
    files = {f"f{i}": os.urandom(40_000 + 977 * i) for i in range(6)}
    for name, body in files.items():
        (tmp_path / name).write_bytes(body)
    events: list[Event] = []
    jobs = [
        (f"f{i % 6}", opts, seed)
        for seed, (i, opts) in enumerate(
            (i, opts)
            for i in range(6)
            for opts in (
                (),
                (("blksize", "1468"),),
                (("blksize", "1468"), ("windowsize", "4")),
                (("blksize", "1024"), ("windowsize", "16")),
            )
        )
    ]

    async def scenario() -> list[tuple[bytes, set[int]]]:
        server = serve(tmp_path, events)
        await server.start()
        try:
            assert server.shared is not None
            return await asyncio.gather(
                *(
                    asyncio.to_thread(lossy_fetch, server.port, name, opts, seed, 0.05)
                    for name, opts, seed in jobs
                )
            )
        finally:
            await server.close()

    results = asyncio.run(scenario())
    ports = set()
    for (name, _, _), (body, seen) in zip(jobs, results, strict=True):
        assert body == files[name]
        ports |= seen
    assert len(ports) == 1, f"transfers came from several ports: {ports}"
    finished = [e for e in events if isinstance(e, TftpEvent) and e.kind == "transfer-finished"]
    assert len(finished) == len(jobs)
    assert sum(e.resends for e in finished) > 0  # the losses were real and recovered from


def test_block_numbers_roll_over_on_the_shared_port(tmp_path: Path) -> None:
    body = os.urandom(8 * 65_536 + 100)  # 65,537 blocks at blksize 8: past block 65535
    (tmp_path / "big").write_bytes(body)

    async def scenario() -> bytes:
        server = serve(tmp_path, [])
        await server.start()
        try:
            got, _ = await asyncio.to_thread(
                lossy_fetch, server.port, "big", (("blksize", "8"), ("windowsize", "16")), 1, 0
            )
            return got
        finally:
            await server.close()

    assert asyncio.run(scenario()) == body


def test_a_stranger_on_the_shared_port_gets_error_5(tmp_path: Path) -> None:
    body = os.urandom(5000)
    (tmp_path / "f").write_bytes(body)
    done = threading.Event()

    def client(port: int) -> None:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as owner,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
        ):
            owner.settimeout(5)
            stranger.settimeout(5)
            owner.sendto(encode_request(1, "f"), ("127.0.0.1", port))  # type: ignore[arg-type]
            first, shared = owner.recvfrom(65536)
            assert decode(first) == Data(1, body[:512])
            assert shared[1] != port  # not port 69's stand-in: floods there stay apart
            stranger.sendto(encode_ack(1), shared)
            assert decode(stranger.recv(100)) == Error(5, "Unknown transfer ID")
            owner.sendto(encode_ack(1), shared)
            assert decode(owner.recv(65536)) == Data(2, body[512:1024])
            owner.sendto(encode_error(8, "enough"), shared)
            done.set()

    async def scenario() -> None:
        server = serve(tmp_path, [])
        await server.start()
        try:
            await asyncio.to_thread(client, server.port)
            for _ in range(100):
                if not server.transfers:
                    break
                await asyncio.sleep(0.01)
            assert not server.transfers  # the client's error ended it
        finally:
            await server.close()

    asyncio.run(scenario())
    assert done.is_set()
