"""The watcher's transport fed through a datagram socketpair (no packet socket needed), the hub
keeping rogue-dhcp events past the strangers' budget, and ``racker status``'s reading of them."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from racker.app.hub import EventHub
from racker.bootstrap.status import rogue_dhcp_servers
from racker.cli.tables import rogue_dhcp_lines
from racker.dhcp.rogue_watch import RogueWatcher
from racker.events import DhcpEvent, Event, RogueDhcpEvent
from racker.store import Store
from tests.unit.dhcp.test_rogue import ROGUE_MAC, reply

OWN_MAC = bytes.fromhex("525400990201")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


Wired = Callable[..., tuple[RogueWatcher, socket.socket, list[Event]]]


@pytest.fixture
def wired() -> Iterator[Wired]:
    """A watcher reading from one end of a datagram socketpair; the test writes frames to the
    other end. Both ends are closed after the test."""
    opened: list[socket.socket] = []

    def make(
        clock: Clock, frames_per_second: int = 200
    ) -> tuple[RogueWatcher, socket.socket, list[Event]]:
        events: list[Event] = []
        watcher = RogueWatcher(
            "pxe0", events.append, frames_per_second=frames_per_second, clock=clock
        )
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        opened.extend((ours, theirs))
        ours.setblocking(False)
        watcher._sock, watcher._mac = ours, OWN_MAC  # what start() sets from the packet socket
        return watcher, theirs, events

    yield make
    for sock in opened:
        sock.close()


def test_a_rogue_offer_warns_once_a_minute_with_an_event(
    caplog: pytest.LogCaptureFixture, wired: Wired
) -> None:
    clock = Clock()
    watcher, wire, events = wired(clock)
    with caplog.at_level(logging.WARNING, logger="racker.dhcp"):
        for _ in range(3):
            wire.send(reply("offer"))
        watcher._on_readable()
        clock.now += 61
        wire.send(reply("ack"))
        watcher._on_readable()
    warnings = [r.getMessage() for r in caplog.records if "rogue DHCP server" in r.getMessage()]
    assert len(warnings) == 2
    assert "192.168.1.1 (MAC 02:00:00:00:be:ef) answered with OFFER of 192.168.1.50" in warnings[0]
    assert [(type(e), e.kind) for e in events] == [(RogueDhcpEvent, "rogue-dhcp")] * 2
    first = events[0]
    assert isinstance(first, RogueDhcpEvent)
    assert first.to_dict() == {
        "source": "dhcp",
        "kind": "rogue-dhcp",
        "mac": None,
        "ts": 1000.0,
        "server_ip": "192.168.1.1",
        "server_mac": ROGUE_MAC,
        "message_type": "OFFER",
        "interface": "pxe0",
        "offered": "192.168.1.50",
        "replies": 1,
    }
    assert watcher.tracker.replies == 4
    assert watcher.servers_seen() == 1
    clock.now += 3601
    assert watcher.servers_seen() == 0


def test_own_frames_requests_and_junk_raise_nothing(
    caplog: pytest.LogCaptureFixture, wired: Wired
) -> None:
    clock = Clock()
    watcher, wire, events = wired(clock)
    own = bytearray(reply("offer"))
    own[6:12] = OWN_MAC  # racker's own OFFER, should the kernel ever hand one over
    for frame in (bytes(own), reply("discover", op=1), b"\xff" * 60, reply()[:150]):
        wire.send(frame)
    with caplog.at_level(logging.WARNING):
        watcher._on_readable()
    assert events == []
    assert not caplog.records
    assert watcher.tracker.replies == 0
    assert watcher.malformed == 1  # the cut reply; the rest were not server replies


async def test_past_the_budget_reading_stops_until_the_next_second(wired: Wired) -> None:
    clock = Clock()
    clock.now = 1000.9  # the next second starts 0.1 s from now
    watcher, wire, events = wired(clock, frames_per_second=5)
    assert watcher._sock is not None
    watcher._loop = asyncio.get_running_loop()
    watcher._loop.add_reader(watcher._sock.fileno(), watcher._on_readable)
    for i in range(20):
        wire.send(reply("offer", server_id=f"10.0.0.{i}"))
    await asyncio.sleep(0.05)
    # Five parsed, the sixth read and counted, the rest left to the kernel (and its drops).
    assert (watcher.tracker.replies, watcher.budget.skipped, len(events)) == (5, 1, 5)
    assert watcher._paused is not None
    clock.now = 1001.2
    for _ in range(100):  # the resume is due 0.1 s after the pause
        await asyncio.sleep(0.05)
        if watcher.tracker.replies > 5:
            break
    assert (watcher.tracker.replies, watcher.budget.skipped) == (10, 2)
    await watcher.close()  # cancels the next resume, closes the socket
    assert watcher._paused is None and watcher._sock is None


def test_the_hub_stores_rogue_events_when_the_strangers_budget_is_spent(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        hub = EventHub(store, flush_interval=0.01)  # 10 strangers' events per flush
        for i in range(15):
            hub.publish(DhcpEvent("ack", "52:54:00:00:00:01", 0.0, xid=i))
        hub.publish(RogueDhcpEvent("rogue-dhcp", None, 0.0, server_ip="10.0.0.2"))
        hub.flush()
        kinds = [e["kind"] for e in store.events()]
        assert kinds.count("ack") == 10
        assert "rogue-dhcp" in kinds


def test_status_names_the_rogue_servers_of_the_last_day(tmp_path: Path) -> None:
    now = 200_000.0

    def rogue(ts: float, ip: str, mac: str = ROGUE_MAC) -> RogueDhcpEvent:
        return RogueDhcpEvent(
            "rogue-dhcp", None, ts, server_ip=ip, server_mac=mac, message_type="OFFER",
            interface="pxe0",
        )  # fmt: skip

    with Store.open(tmp_path) as store:
        store.append_events(
            [
                rogue(now - 90_000, "10.0.0.9"),  # more than a day ago
                rogue(now - 600, "10.0.0.2"),
                DhcpEvent("ack", "52:54:00:00:00:01", now - 500),
                rogue(now - 120, "10.0.0.2"),
                rogue(now - 3000, "10.0.0.3", "02:00:00:00:00:03"),
            ]
        )
        found = rogue_dhcp_servers(store, now)
    assert [(s.server_ip, s.warnings, s.last_seen) for s in found] == [
        ("10.0.0.2", 2, now - 120),
        ("10.0.0.3", 1, now - 3000),
    ]
    lines = rogue_dhcp_lines(found, now)
    assert "another DHCP server answers on pxe0: 10.0.0.2 (MAC 02:00:00:00:be:ef)" in lines[0]
    assert "last OFFER 2m ago (2 warnings in 24 h)" in lines[0]
    assert rogue_dhcp_lines([], now) == []


def test_held_warnings_are_told_in_one_line_with_the_next_warning(
    caplog: pytest.LogCaptureFixture, wired: Wired
) -> None:
    clock = Clock()
    watcher, wire, events = wired(clock)
    for i in range(25):  # 25 forged servers in a minute: 20 warned about, 5 held
        wire.send(reply("offer", server_id=f"10.0.0.{i}"))
    with caplog.at_level(logging.WARNING, logger="racker.dhcp"):
        for _ in range(3):
            watcher._on_readable()
        assert len(events) == 20
        clock.now += 60
        wire.send(reply("offer", server_id="10.0.0.24"))
        watcher._on_readable()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 22
    assert lines[-2].startswith("rogue DHCP: 5 more sightings of servers not yet warned about")
    assert "10.0.0.24" in lines[-1]
