"""bmc.driver auto against real peers: the Redfish emulator over HTTPS and ipmi_sim, built the
way racker builds it (``make_power_driver`` with a state directory), so what it learns is kept
in the state store for the next command.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from racker.errors import BmcTlsError
from racker.power.base import BmcCredentials, BmcTarget, PowerAction, PowerState
from racker.power.drivers import make_power_driver
from racker.rack.config import BmcConfig
from racker.store import Store
from tests.support.bmcsim import BmcSim
from tests.support.redfish import RedfishBmc, RedfishLab

ROOT_GETS = "GET /redfish/v1/"


def host_port(bmc: RedfishBmc, password: str) -> BmcTarget:
    """As ``bmc.addresses: {NODE: "127.0.0.1:PORT"}`` gives it: no URL, so auto probes."""
    return BmcTarget(bmc.name, bmc.host, BmcCredentials(bmc.user, password), bmc.port)


@pytest.mark.slow
async def test_auto_finds_redfish_and_the_next_command_remembers(
    tls_lab: RedfishLab, tmp_path: Path
) -> None:
    bmc = tls_lab.start()
    state = tmp_path / "state"
    config = BmcConfig(timeout=5, verify_tls=tls_lab.ca)
    t = host_port(bmc, tls_lab.password)
    before = bmc.calls().count(ROOT_GETS)  # the lab's readiness checks

    first = make_power_driver(config, state_dir=state)
    await first.power(t, PowerAction.ON)
    assert first.known_protocol(t) == "redfish"
    await first.close()
    assert bmc.system()["PowerState"] == "On"
    assert bmc.calls().count(ROOT_GETS) - before == 2  # the probe, then sushy's login
    with Store.open(state) as store:
        assert store.bmc_protocols() == {f"127.0.0.1:{bmc.port}": "redfish"}

    second = make_power_driver(config, state_dir=state)  # the next racker command
    assert second.known_protocol(t) == "redfish"
    assert await second.power_status(t) is PowerState.ON
    assert bmc.calls().count(ROOT_GETS) - before == 3  # a login, no probe
    await second.close()


@pytest.mark.slow
async def test_a_self_signed_redfish_bmc_without_ipmi_names_verify_tls(
    tls_lab: RedfishLab, tmp_path: Path
) -> None:
    bmc = tls_lab.start()
    driver = make_power_driver(BmcConfig(timeout=3), state_dir=tmp_path / "state")
    started = time.monotonic()
    with pytest.raises(BmcTlsError, match="failed verification") as info:
        await driver.power_status(host_port(bmc, tls_lab.password))
    assert time.monotonic() - started < 3.5
    assert "bmc.verify_tls" in (info.value.hint or "")
    assert driver.known_protocol(host_port(bmc, tls_lab.password)) == ""
    await driver.close()


@pytest.mark.root
@pytest.mark.slow
async def test_auto_falls_back_to_ipmi_and_remembers_it(sim: BmcSim, tmp_path: Path) -> None:
    [bmc] = sim.start(1)
    state = tmp_path / "state"
    driver = make_power_driver(BmcConfig(timeout=5), state_dir=state)
    t = BmcTarget(bmc.name, bmc.host, BmcCredentials(bmc.user, bmc.password), bmc.port)
    await driver.power(t, PowerAction.ON)
    assert bmc.power == "1"
    assert driver.known_protocol(t) == "ipmi"
    info = await driver.info(t)
    assert info.protocol == "ipmi"
    await driver.close()
    with Store.open(state) as store:
        assert store.bmc_protocols() == {bmc.host: "ipmi"}
