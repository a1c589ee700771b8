"""The power driver registry: a driver is chosen by name, the fake exactly like the real ones.

``bmc.driver`` in racker.yaml (or ``--driver``) names the entry: ``auto`` (Redfish where the BMC
serves it, else IPMI; what each BMC answered is kept in the state store), ``redfish``, ``ipmi``
or ``fake``. A driver's modules are imported only when it is chosen, so commands that use the
fake never load pyghmi or sushy.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable
from pathlib import Path

from racker.errors import ConfigError, Problem, StateError
from racker.events import Publish, discard
from racker.power.base import PowerDriver
from racker.rack.config import BmcConfig

log = logging.getLogger("racker.power")

# Fake BMC state kept in the state directory, so trials span several racker commands.
FAKE_STATE_FILE = "fake-bmcs.json"

DriverFactory = Callable[[BmcConfig, Publish, Path | None], PowerDriver]


def _ipmi(config: BmcConfig, publish: Publish, _state_dir: Path | None) -> PowerDriver:
    from racker.power.ipmi import IpmiDriver

    return IpmiDriver(timeout=config.timeout, publish=publish)


def _redfish(config: BmcConfig, publish: Publish, _state_dir: Path | None) -> PowerDriver:
    from racker.power.redfish import RedfishDriver

    return RedfishDriver(timeout=config.timeout, publish=publish, verify_tls=config.verify_tls)


def _auto(config: BmcConfig, publish: Publish, state_dir: Path | None) -> PowerDriver:
    from racker.power.auto import AutoDriver

    return AutoDriver(
        redfish=_redfish(config, discard, state_dir),
        ipmi=_ipmi(config, discard, state_dir),
        memory=StoredProtocols(state_dir) if state_dir is not None else None,
        timeout=config.timeout,
        publish=publish,
        verify_tls=config.verify_tls,
    )


def _fake(config: BmcConfig, publish: Publish, state_dir: Path | None) -> PowerDriver:
    from racker.power.fake import FakeDriver

    state_file = state_dir / FAKE_STATE_FILE if state_dir is not None else None
    return FakeDriver(timeout=config.timeout, publish=publish, state_file=state_file)


DRIVERS: dict[str, DriverFactory] = {
    "auto": _auto,
    "redfish": _redfish,
    "ipmi": _ipmi,
    "fake": _fake,
}


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
    if isinstance(config.verify_tls, Path) and not config.verify_tls.is_file():
        raise ConfigError(
            [
                Problem(
                    "racker.yaml",
                    None,
                    f"bmc.verify_tls: no CA bundle at {config.verify_tls}",
                    "give a PEM file of the CA certificates that signed the BMCs' "
                    "certificates, or true/false",
                )
            ]
        )
    return factory(config, publish, state_dir)


class StoredProtocols:
    """The auto driver's memory in the state store (``Store.bmc_protocols``), read once.

    A store that cannot be opened (no state directory yet, read-only) costs only the memory:
    racker then probes each BMC once per command. On an event loop (``racker serve``,
    ``racker bootstrap``) the store is read and written on a thread of its own, one write
    after another in the order they were made (``ready`` reads, ``close`` waits for the
    writes); elsewhere both happen at once, on the caller's thread.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._known: dict[str, str] | None = None
        self._writer: concurrent.futures.ThreadPoolExecutor | None = None
        self._loading: asyncio.Lock | None = None

    async def ready(self) -> None:
        """Read the store, off the loop, unless it was read."""
        if self._known is not None:
            return
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._known is None:
                self._known = await asyncio.to_thread(self._read)

    def _read(self) -> dict[str, str]:
        from racker.store import DB_NAME, Store

        if not (self.state_dir / DB_NAME).exists():
            return {}
        try:
            with Store.open(self.state_dir) as store:
                return store.bmc_protocols()
        except StateError as exc:
            log.info("BMC protocols not read from the state store: %s", exc.message)
            return {}

    def _load(self) -> dict[str, str]:
        if self._known is None:
            self._known = self._read()
        return self._known

    def recall(self, bmc: str) -> str | None:
        return self._load().get(bmc)

    def remember(self, bmc: str, protocol: str | None) -> None:
        known = self._load()
        if known.get(bmc) == protocol:
            return
        if protocol is None:
            known.pop(bmc, None)
        else:
            known[bmc] = protocol
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop to keep free: write now
            self._write(bmc, protocol)
            return
        if self._writer is None:
            self._writer = concurrent.futures.ThreadPoolExecutor(1, "racker-bmc-protocols")
        self._writer.submit(self._write, bmc, protocol)

    def _write(self, bmc: str, protocol: str | None) -> None:
        from racker.store import Store

        try:
            with Store.open(self.state_dir) as store:
                store.set_bmc_protocol(bmc, protocol)
        except StateError as exc:
            log.info("BMC protocol of %s not stored: %s", bmc, exc.message)

    async def close(self) -> None:
        """Wait, off the loop, until every protocol remembered is stored."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await asyncio.to_thread(writer.shutdown, True)
