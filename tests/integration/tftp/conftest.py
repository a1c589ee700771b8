"""A racker TFTP server running in a test-made namespace, and a client namespace next to it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from racker.events import Event
from racker.tftp.server import TftpServer
from racker.tftp.settings import TftpSettings
from racker.tftp.transfer import TransferLimits, max_blksize_for_mtu
from tests.support.netns import Link, entered, link

SERVER_IP, CLIENT_IP, CLIENT_MAC = "10.99.0.1", "10.99.0.2", "52:54:00:aa:00:01"
REPO = Path(__file__).resolve().parents[3]


@dataclass
class Rig:
    link: Link
    root: Path
    outside: Path
    server: TftpServer
    events: list[Event]
    allowed: set[str] = field(default_factory=lambda: {CLIENT_IP})

    def client(self, *args: str, timeout: float = 120) -> str:
        """Run a command in the client namespace; return stdout, fail the test on non-zero."""
        proc = self.link.client.run(*args, check=False, timeout=timeout)
        assert proc.returncode == 0, f"{args[0]} exited {proc.returncode}: {proc.stderr[-2000:]}"
        return proc.stdout

    def wait_event(self, kind: str, file: str, count: int = 1) -> list[Event]:
        """Events arrive when the server has seen the final ACK, just after the client exits."""
        for _ in range(200):
            found = [
                e for e in list(self.events) if e.kind == kind and getattr(e, "file", "") == file
            ]
            if len(found) >= count:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event for {file!r}; events: {self.events}")

    def wait_event_any(self, kinds: tuple[str, ...], file: str) -> Event:
        """The first event of any of ``kinds`` for ``file``, waiting for it as ``wait_event``."""
        for _ in range(600):
            for e in list(self.events):
                if e.kind in kinds and getattr(e, "file", "") == file:
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no {kinds} event for {file!r}; events: {self.events}")


class ServerThread:
    """Runs the server's event loop in a thread that lives in the server namespace."""

    def __init__(self, ns: str, make: Callable[[], TftpServer]) -> None:
        self.ns, self.make = ns, make
        self.ready = threading.Event()
        self.server: TftpServer | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with entered(self.ns):
                asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.server = self.make()
        await self.server.start()
        self.ready.set()
        await self.stop_event.wait()
        await self.server.close()

    def __enter__(self) -> TftpServer:
        self.thread.start()
        self.ready.wait(10)
        if self.error or self.server is None:
            raise RuntimeError(f"TFTP server did not start: {self.error!r}")
        return self.server

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(10)


def make_files(root: Path, outside: Path) -> None:
    root.mkdir()
    outside.mkdir()
    (root / "small.bin").write_bytes(os.urandom(300_000 + 123))
    (root / "exact.bin").write_bytes(os.urandom(512 * 1468))  # a multiple of both blksizes
    (root / "Boot").mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "escape").symlink_to(outside / "secret")
    (root / "zero").symlink_to("/dev/zero")


# Every real-client test runs against both ways of serving transfers: all on one shared port
# (the default, tftp/shared.py) and a port per transfer (tftp/session.py).
@pytest.fixture(scope="module", params=["single-port", "port-per-transfer"])
def rig(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Rig]:
    base = tmp_path_factory.mktemp("tftp")
    root, outside = base / "root", base / "outside"
    make_files(root, outside)
    events: list[Event] = []
    allowed = {CLIENT_IP}
    limits = TransferLimits(max_blksize=max_blksize_for_mtu(1500), timeout=0.2, retries=10)
    single = request.param == "single-port"
    settings = TftpSettings(roots=(root,), limits=limits, single_port=single)
    with link(SERVER_IP, 24, CLIENT_IP, CLIENT_MAC) as net:

        def make() -> TftpServer:
            return TftpServer(
                SERVER_IP,
                settings,
                events.append,
                policy=lambda ip: ip in allowed,
                mac_for=lambda ip: CLIENT_MAC if ip == CLIENT_IP else None,
            )

        with ServerThread(net.server.name, make) as server:
            yield Rig(net, root, outside, server, events, allowed)
