"""IpmiDriver's deadline, per-BMC serialisation and error mapping, with a stub session.

The stub replaces the one choke point (``opener``), so these run without any BMC; the real
pyghmi path is exercised against ipmi_sim in tests/integration/power.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator

import pytest

from racker.errors import BmcError, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.power import ipmi_codec as c
from racker.power.base import (
    BmcCredentials,
    BmcTarget,
    BootDevice,
    BootSetting,
    PowerAction,
    PowerState,
)
from racker.power.ipmi import IpmiDriver

from .conftest import PASSWORD


class Stub:
    """Plays the BMCs: answers per request, can block logins or commands until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.block_login: set[str] = set()
        self.block_send: set[str] = set()
        self.sent: dict[str, list[c.Request]] = defaultdict(list)
        self.active: dict[str, int] = defaultdict(int)
        self.most_active: dict[str, int] = defaultdict(int)
        self.logins: dict[str, int] = defaultdict(int)
        self.discarded = 0
        self.answer: Callable[[BmcTarget, c.Request], bytes] = lambda _t, _r: b"\x01\x00\x00"
        self.lock = threading.Lock()

    def open(self, target: BmcTarget) -> StubSession:
        with self.lock:
            self.logins[target.host] += 1
            self.active[target.host] += 1
            self.most_active[target.host] = max(
                self.most_active[target.host], self.active[target.host]
            )
        if target.host in self.block_login:
            self.release.wait(10)
            with self.lock:
                self.active[target.host] -= 1
            raise BmcUnreachable(target.node, "login gave up")
        return StubSession(self, target)


class StubSession:
    def __init__(self, stub: Stub, target: BmcTarget) -> None:
        self.stub = stub
        self.target = target

    def send(self, request: c.Request) -> bytes:
        self.stub.sent[self.target.host].append(request)
        if self.target.host in self.stub.block_send:
            self.stub.release.wait(10)
        return self.stub.answer(self.target, request)

    def discard(self) -> None:
        self.stub.discarded += 1

    def close(self) -> None:
        with self.stub.lock:
            self.stub.active[self.target.host] -= 1


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    yield s
    s.release.set()  # free any thread a test left blocked


def t(host: str) -> BmcTarget:
    return BmcTarget(f"node-{host}", host, BmcCredentials("admin", PASSWORD))


async def test_operations_send_the_codec_requests(stub: Stub) -> None:
    driver = IpmiDriver(timeout=2, opener=stub.open)
    assert await driver.power_status(t("a")) is PowerState.ON
    await driver.power(t("a"), PowerAction.CYCLE)
    await driver.set_boot_device(t("a"), BootSetting(BootDevice.PXE, efi=True))
    await driver.disable_boot_flag_timeout(t("a"))
    assert stub.sent["a"] == [
        c.chassis_status(),
        c.chassis_control(PowerAction.CYCLE),
        c.keep_boot_flags(),
        c.set_boot_flags(BootSetting(BootDevice.PXE, efi=True)),
        c.keep_boot_flags(),
    ]
    assert stub.logins["a"] == 4  # one session per operation
    await driver.close()


async def test_refused_boot_flag_timer_does_not_stop_set_boot(stub: Stub) -> None:
    def answer(target: BmcTarget, request: c.Request) -> bytes:
        if request == c.keep_boot_flags():
            raise BmcUnsupported(target.node, "parameter not supported")
        return b""

    stub.answer = answer
    driver = IpmiDriver(timeout=2, opener=stub.open)
    await driver.set_boot_device(t("a"), BootSetting(BootDevice.DISK))
    assert stub.sent["a"][-1] == c.set_boot_flags(BootSetting(BootDevice.DISK))


async def test_a_transient_error_on_the_timer_stops_set_boot(stub: Stub) -> None:
    def answer(target: BmcTarget, request: c.Request) -> bytes:
        raise BmcTimeout(target.node, "no reply")

    stub.answer = answer
    driver = IpmiDriver(timeout=2, opener=stub.open)
    with pytest.raises(BmcTimeout):
        await driver.set_boot_device(t("a"), BootSetting(BootDevice.DISK))
    assert stub.sent["a"] == [c.keep_boot_flags()]


async def test_silent_bmc_is_unreachable_at_the_deadline_and_others_go_on(stub: Stub) -> None:
    stub.block_login.add("dead")
    driver = IpmiDriver(timeout=0.3, opener=stub.open)
    dead = asyncio.ensure_future(driver.power_status(t("dead")))
    alive = asyncio.ensure_future(driver.power_status(t("alive")))
    done, _ = await asyncio.wait({dead, alive}, return_when=asyncio.FIRST_COMPLETED)
    assert done == {alive}
    with pytest.raises(BmcUnreachable, match=r"no answer from the BMC at dead within 0\.3 s"):
        await dead


async def test_bmc_that_stops_answering_after_login_times_out(stub: Stub) -> None:
    stub.block_send.add("a")
    driver = IpmiDriver(timeout=0.3, opener=stub.open)
    with pytest.raises(BmcTimeout, match="stopped answering") as info:
        await driver.power(t("a"), PowerAction.ON)
    assert info.value.retryable
    # The abandoned thread still holds the BMC: the next call waits for it, never opens a
    # second session, and says why it gave up.
    with pytest.raises(BmcTimeout, match=r"previous operation .* still running"):
        await driver.power_status(t("a"))
    assert stub.logins["a"] == 1
    stub.block_send.clear()
    stub.release.set()
    assert await driver.power_status(t("a")) is PowerState.ON


async def test_one_operation_at_a_time_per_bmc_many_bmcs_at_once(stub: Stub) -> None:
    seen_together = threading.Event()
    both = threading.Barrier(2)

    def answer(target: BmcTarget, request: c.Request) -> bytes:
        if target.host in ("x", "y"):
            try:
                both.wait(2)  # only passes if x and y are served at the same time
                seen_together.set()
            except threading.BrokenBarrierError:
                pass
        return b"\x00"

    stub.answer = answer
    driver = IpmiDriver(timeout=5, opener=stub.open)
    await asyncio.gather(
        *(driver.power_status(t("a")) for _ in range(5)),
        driver.power_status(t("x")),
        driver.power_status(t("y")),
    )
    assert stub.most_active["a"] == 1
    assert seen_together.is_set()


async def test_bad_replies_and_client_bugs_become_bmc_errors(stub: Stub) -> None:
    stub.answer = lambda _t, _r: b""
    driver = IpmiDriver(timeout=2, opener=stub.open)
    with pytest.raises(BmcError, match="sent a bad reply: Get Chassis Status reply has no data"):
        await driver.power_status(t("a"))

    def crash(_t: BmcTarget, _r: c.Request) -> bytes:
        raise TypeError(f"'<' not supported, password {PASSWORD}")

    stub.answer = crash
    with pytest.raises(BmcError) as info:
        await driver.power_status(t("a"))
    assert str(info.value) == "node-a: power status: IPMI client failure talking to a (TypeError)"
    assert stub.active["a"] == 0  # sessions closed on every path
    assert stub.discarded == 2  # and never reused after an error


def test_one_driver_serves_several_event_loops(stub: Stub) -> None:
    # racker commands may call asyncio.run more than once with the same driver.
    driver = IpmiDriver(timeout=2, opener=stub.open)

    async def both() -> list[PowerState]:
        return list(await asyncio.gather(driver.power_status(t("a")), driver.power_status(t("a"))))

    assert asyncio.run(both()) == [PowerState.ON, PowerState.ON]
    assert asyncio.run(both()) == [PowerState.ON, PowerState.ON]
