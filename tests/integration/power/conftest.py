from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from racker.power.base import BmcCredentials, BmcTarget
from tests.support.bmcsim import BmcSim, SimBmc


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
