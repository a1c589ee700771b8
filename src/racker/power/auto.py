"""``bmc.driver: auto``: Redfish when the BMC serves it, else IPMI, remembered per BMC (layer 2).

The first operation on a BMC racker has no memory of asks ``https://host[:port]/redfish/v1/``
(the service root, which needs no login: no credentials are sent while probing):

- a Redfish service root answers: Redfish, remembered;
- nothing does (refused, no answer, not Redfish): the operation goes over IPMI; once the BMC
  answers IPMI (even to refuse the password) IPMI is remembered;
- a Redfish service answers but its certificate fails ``bmc.verify_tls``: IPMI is tried, and
  used if it answers (remembered for this process only, so fixing verify_tls takes effect on
  the next command); if IPMI does not answer either, the certificate error is the one reported.

A URL in ``bmc.addresses`` means Redfish, never probed. A remembered protocol that stops
answering is forgotten, so the next operation probes again (a BMC whose IPMI was switched off
for Redfish is found without clearing anything). The probe and the operation share the
operation's deadline (``bmc.timeout``).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol, TypeVar

from racker.errors import BmcError, BmcTimeout, BmcTlsError, BmcUnreachable
from racker.events import Publish, discard
from racker.power.base import (
    BmcInfo,
    BmcTarget,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)
from racker.power.sushy_client import TLS_HINT

log = logging.getLogger("racker.power")

T = TypeVar("T")
REDFISH, IPMI = "redfish", "ipmi"
PROBE_SHARE = 0.25  # at most this share of the operation's deadline goes to the probe ...
PROBE_MAX = 3.0  # ... and at most this many seconds


class ProtocolMemory(Protocol):
    """Which protocol each BMC answered, by ``host[:port]`` (the state store's table)."""

    def recall(self, bmc: str) -> str | None: ...

    def remember(self, bmc: str, protocol: str | None) -> None: ...

    async def ready(self) -> None:
        """Called before the first ``recall`` on the loop: read what is remembered."""

    async def close(self) -> None:
        """Called when the driver closes: finish storing what was remembered."""


class InMemory:
    """A ``ProtocolMemory`` for one process (no state directory, and tests)."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}

    def recall(self, bmc: str) -> str | None:
        return self.known.get(bmc)

    def remember(self, bmc: str, protocol: str | None) -> None:
        if protocol is None:
            self.known.pop(bmc, None)
        else:
            self.known[bmc] = protocol

    async def ready(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Probe(enum.Enum):
    REDFISH = "redfish"  # a Redfish service root answered over verified HTTPS
    REDFISH_UNVERIFIED = "unverified"  # it answered, but its certificate failed verify_tls
    NONE = "none"  # no Redfish service there


# Asks target's Redfish service root, within the given seconds (blocking: run in a thread).
Prober = Callable[[BmcTarget, "bool | str", float], Probe]


def probe_redfish(target: BmcTarget, verify: bool | str, timeout: float) -> Probe:
    """GET the service root without credentials (blocking)."""
    import requests

    url = target.redfish_url + "/redfish/v1/"

    def is_redfish(verify_now: bool | str) -> bool:
        reply = requests.get(url, verify=verify_now, timeout=timeout, allow_redirects=False)
        try:
            data = reply.json()
        except ValueError:
            return False
        return (
            reply.ok and isinstance(data, dict) and ("RedfishVersion" in data or "Systems" in data)
        )

    try:
        return Probe.REDFISH if is_redfish(verify) else Probe.NONE
    except requests.exceptions.SSLError as exc:
        if verify is False or "certificate verify failed" not in str(exc).lower():
            return Probe.NONE
    except (requests.exceptions.RequestException, OSError):
        return Probe.NONE
    # The certificate failed: is it a Redfish service at all? Nothing secret is sent.
    try:
        # As sushy does for verify=False: urllib3 would warn about every unverified request.
        requests.packages.urllib3.disable_warnings()  # type: ignore[attr-defined]
        return Probe.REDFISH_UNVERIFIED if is_redfish(False) else Probe.NONE
    except (requests.exceptions.RequestException, OSError):
        return Probe.NONE


class AutoDriver(PowerDriver):
    name = "auto"

    def __init__(
        self,
        redfish: PowerDriver,
        ipmi: PowerDriver,
        memory: ProtocolMemory | None = None,
        timeout: float = 20.0,
        publish: Publish = discard,
        verify_tls: bool | Path = True,
        prober: Prober = probe_redfish,
    ) -> None:
        super().__init__(timeout, publish)
        self.drivers = {REDFISH: redfish, IPMI: ipmi}
        self.memory: ProtocolMemory = memory if memory is not None else InMemory()
        self._this_process: dict[str, str] = {}  # decided, but not worth storing
        self._verify = str(verify_tls) if isinstance(verify_tls, Path) else verify_tls
        self._probe = prober

    async def close(self) -> None:
        for driver in self.drivers.values():
            await driver.close()
        await self.memory.close()

    def known_protocol(self, target: BmcTarget) -> str:
        if target.scheme is not None:
            return REDFISH
        key = target.address
        return self._this_process.get(key) or self.memory.recall(key) or ""

    async def detect_protocol(self, target: BmcTarget) -> str:
        """Redfish if its service root answers (remembered when its certificate passes
        bmc.verify_tls), else "ipmi" (not remembered: IPMI was not asked)."""
        await self.memory.ready()
        known = self.known_protocol(target)
        if known:
            return known
        probe = await asyncio.to_thread(self._probe, target, self._verify, self._probe_seconds())
        if probe is Probe.REDFISH:
            self.memory.remember(target.address, REDFISH)
        return IPMI if probe is Probe.NONE else REDFISH

    async def ipmi_answers(self, target: BmcTarget) -> bool:
        """Whether the BMC answers IPMI at all (refusing the password counts): a BMC that
        serves Redfish may have IPMI on too (``racker console`` needs it)."""
        try:
            await self.drivers[IPMI].power_status(target)
        except (BmcUnreachable, BmcTimeout):
            return False
        except BmcError:
            return True
        return True

    # -- operations: the same one on whichever driver the BMC speaks -----------------------

    async def _do_power_status(self, target: BmcTarget) -> PowerState:
        return await self._route(target, lambda d: d._do_power_status(target))

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        await self._route(target, lambda d: d._do_power(target, action))

    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None:
        await self._route(target, lambda d: d._do_set_boot(target, setting))

    async def _do_get_boot(self, target: BmcTarget) -> BootSetting:
        return await self._route(target, lambda d: d._do_get_boot(target))

    async def _do_disable_timer(self, target: BmcTarget) -> None:
        await self._route(target, lambda d: d._do_disable_timer(target))

    async def _do_info(self, target: BmcTarget) -> BmcInfo:
        return await self._route(target, lambda d: d._do_info(target))

    # -- choosing ------------------------------------------------------------------------

    def _probe_seconds(self) -> float:
        return min(self.timeout * PROBE_SHARE, PROBE_MAX)

    async def _route(self, target: BmcTarget, op: Callable[[PowerDriver], Awaitable[T]]) -> T:
        started = time.monotonic()
        await self.memory.ready()
        known = self.known_protocol(target)
        if known:
            return await self._known(target, known, op)
        probe = await asyncio.to_thread(self._probe, target, self._verify, self._probe_seconds())
        log.debug("%s: Redfish probe of %s: %s", target.node, target.redfish_url, probe.value)
        if probe is Probe.REDFISH:
            self.memory.remember(target.address, REDFISH)
            return await self._known(target, REDFISH, op)
        remaining = self.timeout - (time.monotonic() - started)
        try:
            result = await self._bounded(target, op(self.drivers[IPMI]), remaining)
        except BmcError as exc:
            if isinstance(exc, BmcUnreachable | BmcTimeout):
                if probe is Probe.REDFISH_UNVERIFIED:
                    raise self._certificate_error(target, exc) from None
                raise BmcUnreachable(
                    target.node,
                    f"no Redfish service at {target.redfish_url} and no IPMI answer at "
                    f"{target.address} ({exc.message.removeprefix(target.node + ': ')})",
                    "check the BMC's address, power and cabling",
                ) from None
            self._decided(target, IPMI, probe)  # it answered IPMI, if only to refuse
            raise
        self._decided(target, IPMI, probe)
        return result

    def _decided(self, target: BmcTarget, protocol: str, probe: Probe) -> None:
        if probe is Probe.REDFISH_UNVERIFIED:
            if target.address not in self._this_process:
                log.warning(
                    "%s: the BMC at %s serves Redfish, but its certificate fails "
                    "bmc.verify_tls; using IPMI",
                    target.node,
                    target.address,
                )
            self._this_process[target.address] = protocol
        else:
            self.memory.remember(target.address, protocol)

    async def _known(
        self, target: BmcTarget, protocol: str, op: Callable[[PowerDriver], Awaitable[T]]
    ) -> T:
        try:
            return await op(self.drivers[protocol])
        except (BmcUnreachable, BmcTimeout):
            if target.scheme is None:  # probe again next time: the BMC may have changed
                self._this_process.pop(target.address, None)
                self.memory.remember(target.address, None)
            raise

    def _certificate_error(self, target: BmcTarget, ipmi: BmcError) -> BmcTlsError:
        return BmcTlsError(
            target.node,
            f"the TLS certificate of the Redfish service at {target.redfish_url} failed "
            f"verification, and IPMI at {target.address} does not answer either "
            f"({ipmi.message.removeprefix(target.node + ': ')})",
            TLS_HINT,
        )

    async def _bounded(self, target: BmcTarget, work: Awaitable[T], seconds: float) -> T:
        try:
            return await asyncio.wait_for(work, max(seconds, 0.01))
        except TimeoutError:
            raise BmcTimeout(
                target.node,
                f"no answer from the BMC at {target.address} within {self.timeout:g} s "
                "(Redfish probe, then IPMI)",
                "check the BMC's address, power and cabling",
            ) from None
