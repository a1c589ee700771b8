from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from racker.power.base import BmcCredentials, BmcTarget
from tests.support.bmcsim import BmcSim, SimBmc
from tests.support.redfish import RedfishBmc, RedfishLab
from tests.support.redfish import available as redfish_available


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[BmcSim]:
    if shutil.which("ipmi_sim") is None:
        pytest.skip("ipmi_sim is not installed (Debian package openipmi; scripts/setup-host)")
    with BmcSim(tmp_path / "bmcs") as simulator:
        yield simulator


def target(bmc: SimBmc, password: str | None = None) -> BmcTarget:
    return BmcTarget(
        bmc.name, bmc.host, BmcCredentials(bmc.user, password or bmc.password), bmc.port
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[RedfishLab]:
    """Emulated Redfish BMCs over plain HTTP (URL targets), stopped after the test."""
    why = redfish_available()
    if why:
        pytest.skip(why)
    with RedfishLab(tmp_path / "redfish") as bmcs:
        yield bmcs


@pytest.fixture
def tls_lab(tmp_path: Path) -> Iterator[RedfishLab]:
    """The same over HTTPS, with a self-signed certificate (``tls_lab.ca``)."""
    why = redfish_available()
    if why:
        pytest.skip(why)
    with RedfishLab(tmp_path / "redfish-tls", tls=True) as bmcs:
        yield bmcs


def redfish_target(bmc: RedfishBmc, password: str | None = None, **fields: Any) -> BmcTarget:
    """``bmc`` as ``bmc.addresses`` would give it: its URL."""
    credentials = BmcCredentials(bmc.user, password or bmc.password)
    return BmcTarget(bmc.name, bmc.host, credentials, bmc.port, scheme=bmc.scheme, **fields)
