"""The power driver registry: a driver is chosen by name, the fake exactly like the real one.

``bmc.driver`` in racker.yaml (or ``--driver``) names the entry. The IPMI driver is imported
only when chosen, so commands that use the fake never load pyghmi.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from racker.errors import ConfigError, Problem
from racker.events import Publish, discard
from racker.power.base import PowerDriver
from racker.rack.config import BmcConfig

# Fake BMC state kept in the state directory, so trials span several racker commands.
FAKE_STATE_FILE = "fake-bmcs.json"

DriverFactory = Callable[[BmcConfig, Publish, Path | None], PowerDriver]


def _ipmi(config: BmcConfig, publish: Publish, _state_dir: Path | None) -> PowerDriver:
    from racker.power.ipmi import IpmiDriver

    return IpmiDriver(timeout=config.timeout, publish=publish)


def _fake(config: BmcConfig, publish: Publish, state_dir: Path | None) -> PowerDriver:
    from racker.power.fake import FakeDriver

    state_file = state_dir / FAKE_STATE_FILE if state_dir is not None else None
    return FakeDriver(timeout=config.timeout, publish=publish, state_file=state_file)


DRIVERS: dict[str, DriverFactory] = {"ipmi": _ipmi, "fake": _fake}


def make_power_driver(
    config: BmcConfig,
    name: str | None = None,
    publish: Publish = discard,
    state_dir: Path | None = None,
) -> PowerDriver:
    """Build the driver ``name`` (default: ``config.driver``)."""
    chosen = name or config.driver
    factory = DRIVERS.get(chosen)
    if factory is None:
        raise ConfigError(
            [
                Problem(
                    "racker.yaml",
                    None,
                    f"bmc.driver: unknown power driver {chosen!r}",
                    f"known drivers: {', '.join(sorted(DRIVERS))}",
                )
            ]
        )
    return factory(config, publish, state_dir)
