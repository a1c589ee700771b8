"""bmc.driver auto: which protocol it picks, what it remembers, and within which deadline.

The two protocols are fake drivers (one per protocol, each with its own BMCs) and the Redfish
probe is a table, so every decision is checked without a network.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from racker.errors import BmcAuthFailed, BmcTimeout, BmcTlsError, BmcUnreachable
from racker.events import BmcEvent, Event
from racker.power.auto import AutoDriver, InMemory, Probe
from racker.power.base import BmcCredentials, BmcTarget, PowerAction, PowerState
from racker.power.drivers import StoredProtocols
from racker.power.fake import FakeDriver

from .conftest import PASSWORD


class Prober:
    def __init__(self, answers: dict[str, Probe], delay: float = 0.0) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self.delay = delay

    def __call__(self, target: BmcTarget, verify: bool | str, timeout: float) -> Probe:
        self.asked.append(target.redfish_url)
        time.sleep(min(self.delay, timeout))
        return self.answers.get(target.host, Probe.NONE)


def target(n: int, scheme: str | None = None, password: str = PASSWORD) -> BmcTarget:
    port = 443 if scheme else 623
    return BmcTarget(
        f"node{n}", f"10.0.0.{n}", BmcCredentials("admin", password), port, scheme=scheme
    )


def auto(
    prober: Prober, memory: InMemory | StoredProtocols | None = None, timeout: float = 2.0
) -> tuple[AutoDriver, FakeDriver, FakeDriver, list[Event]]:
    redfish, ipmi = FakeDriver(timeout=timeout), FakeDriver(timeout=timeout)
    # 10.0.0.3 answers only IPMI, 10.0.0.1 only Redfish (if the probe says it is there).
    redfish.bmc("10.0.0.3").reachable = False
    ipmi.bmc("10.0.0.1").reachable = False
    events: list[Event] = []
    driver = AutoDriver(
        redfish, ipmi, memory, timeout=timeout, publish=events.append, prober=prober
    )
    return driver, redfish, ipmi, events


async def test_redfish_first_then_ipmi_and_each_answer_remembered() -> None:
    prober = Prober({"10.0.0.1": Probe.REDFISH})
    memory = InMemory()
    driver, redfish, ipmi, events = auto(prober, memory)
    await driver.power(target(1), PowerAction.ON)  # Redfish answers
    await driver.power(target(2), PowerAction.ON)  # no Redfish: IPMI
    assert [c.node for c in redfish.calls] == ["node1"]
    assert [c.node for c in ipmi.calls] == ["node2"]
    assert memory.known == {"10.0.0.1": "redfish", "10.0.0.2": "ipmi"}
    assert await driver.power_status(target(1)) is PowerState.ON
    assert await driver.power_status(target(2)) is PowerState.ON
    assert prober.asked == ["https://10.0.0.1", "https://10.0.0.2"]  # once per BMC
    assert (driver.known_protocol(target(1)), driver.known_protocol(target(2))) == (
        "redfish",
        "ipmi",
    )
    # One event per operation, from auto's own choke point.
    assert [e.action for e in events if isinstance(e, BmcEvent)] == [
        "power-on",
        "power-on",
        "power-status",
        "power-status",
    ]


async def test_a_url_is_redfish_without_a_probe() -> None:
    prober = Prober({})
    driver, redfish, ipmi, _ = auto(prober)
    await driver.power(target(5, scheme="https"), PowerAction.ON)
    assert prober.asked == [] and len(redfish.calls) == 1 and ipmi.calls == []
    assert driver.known_protocol(target(5, scheme="https")) == "redfish"


async def test_an_ipmi_bmc_that_refuses_the_password_is_still_ipmi() -> None:
    memory = InMemory()
    driver, _, ipmi, _ = auto(Prober({}), memory)
    ipmi.bmc("10.0.0.2").password = "another"  # noqa: S105
    with pytest.raises(BmcAuthFailed):
        await driver.power_status(target(2))
    assert memory.known == {"10.0.0.2": "ipmi"}


async def test_nothing_answering_is_unreachable_and_not_remembered() -> None:
    memory = InMemory()
    driver, _, _, _ = auto(Prober({}), memory)
    with pytest.raises(
        BmcUnreachable, match=r"no Redfish service at https://10\.0\.0\.1 and no IPMI"
    ):
        await driver.power_status(target(1))
    assert memory.known == {}
    assert driver.known_protocol(target(1)) == ""


async def test_a_remembered_protocol_that_stops_answering_is_probed_again() -> None:
    memory = InMemory()
    memory.remember("10.0.0.3", "redfish")  # its Redfish went away; IPMI stayed
    prober = Prober({})
    driver, _, ipmi, _ = auto(prober, memory)
    with pytest.raises(BmcUnreachable):
        await driver.power_status(target(3))
    assert prober.asked == [] and memory.known == {}
    assert await driver.power_status(target(3)) is PowerState.OFF
    assert prober.asked == ["https://10.0.0.3"] and memory.known == {"10.0.0.3": "ipmi"}
    assert len(ipmi.calls) == 1


async def test_a_bad_certificate_falls_back_to_ipmi_for_this_process_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    memory = InMemory()
    prober = Prober({"10.0.0.2": Probe.REDFISH_UNVERIFIED, "10.0.0.1": Probe.REDFISH_UNVERIFIED})
    driver, redfish, _, _ = auto(prober, memory)
    assert await driver.power_status(target(2)) is PowerState.OFF  # IPMI works
    assert "fails bmc.verify_tls; using IPMI" in caplog.text
    assert memory.known == {}  # fixing verify_tls takes effect on the next command
    assert driver.known_protocol(target(2)) == "ipmi"
    await driver.power_status(target(2))
    assert prober.asked == ["https://10.0.0.2"]
    # No IPMI either: the certificate is the thing to fix, and the error says which option.
    with pytest.raises(BmcTlsError, match="failed verification") as info:
        await driver.power_status(target(1))
    assert "bmc.verify_tls" in (info.value.hint or "")
    assert redfish.calls == []


async def test_probe_and_fallback_share_one_deadline() -> None:
    prober = Prober({}, delay=10)  # a probe that takes its whole share
    driver, _, ipmi, _ = auto(prober, timeout=1.0)
    ipmi.bmc("10.0.0.2").delay = 5  # and an IPMI BMC slower than what is left
    started = time.monotonic()
    with pytest.raises(BmcUnreachable):
        await driver.power_status(target(2))
    assert time.monotonic() - started < 1.5


async def test_the_slow_fallback_says_timeout_within_the_deadline() -> None:
    driver, _, ipmi, _ = auto(Prober({}), timeout=0.5)
    ipmi.bmc("10.0.0.2").delay = 5
    with pytest.raises(BmcUnreachable, match="no IPMI answer"):
        await driver.power_status(target(2))
    ipmi.bmc("10.0.0.2").delay = 0
    await driver.power_status(target(2))
    driver.memory.remember("10.0.0.2", "ipmi")
    ipmi.bmc("10.0.0.2").delay = 5
    with pytest.raises(BmcTimeout):  # remembered: the driver's own words
        await driver.power_status(target(2))


async def test_detect_protocol_probes_once_and_remembers_redfish(tmp_path: Path) -> None:
    prober = Prober({"10.0.0.1": Probe.REDFISH})
    driver, _, _, _ = auto(prober, StoredProtocols(tmp_path))
    assert await driver.detect_protocol(target(1)) == "redfish"
    assert await driver.detect_protocol(target(2)) == "ipmi"  # a guess: not remembered
    assert await driver.detect_protocol(target(1)) == "redfish"
    assert prober.asked == ["https://10.0.0.1", "https://10.0.0.2"]
    await driver.close()  # on a loop the memory is stored on its own thread, waited for here
    assert StoredProtocols(tmp_path).recall("10.0.0.1") == "redfish"
    assert StoredProtocols(tmp_path).recall("10.0.0.2") is None


async def test_on_the_loop_the_stored_memory_reads_and_writes_on_another_thread(
    tmp_path: Path,
) -> None:
    threads: list[tuple[str, str]] = []

    class Watched(StoredProtocols):
        def _read(self) -> dict[str, str]:
            threads.append(("read", threading.current_thread().name))
            return super()._read()

        def _write(self, bmc: str, protocol: str | None) -> None:
            threads.append(("write", threading.current_thread().name))
            super()._write(bmc, protocol)

    prober = Prober({"10.0.0.1": Probe.REDFISH})
    driver, _, _, _ = auto(prober, Watched(tmp_path))
    await driver.power(target(1), PowerAction.ON)  # Redfish: remembered
    await driver.power(target(3), PowerAction.ON)  # IPMI: remembered
    await driver.close()  # every remembered protocol stored by now
    loop_thread = threading.current_thread().name
    assert [kind for kind, _ in threads] == ["read", "write", "write"]
    assert all(name != loop_thread for _, name in threads)
    again = StoredProtocols(tmp_path)  # the next command, off any loop
    assert (again.recall("10.0.0.1"), again.recall("10.0.0.3")) == ("redfish", "ipmi")
