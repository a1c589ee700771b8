"""Redfish power driver on sushy (layer 2).

sushy is blocking, so every operation runs in a worker thread (``racker.power.workers``: a
deadline, one operation at a time per BMC, many BMCs at once), as the IPMI driver runs pyghmi.
Unlike IPMI's one session per operation, a Redfish session is kept per BMC for the driver's
life (a login is a root GET, a session POST and the system's GETs; BMCs allow a handful of
sessions, so racker holds one and ends it in ``close``).

Recovery: a BMC that stopped answering (refused, reset, timed out) or refused the credentials
loses its session without a word sent to it; the next operation logs in afresh, so a restarted
BMC works again without restarting racker. A session the BMC itself expired is renewed by sushy.

What each operation sends (``redfish_codec`` holds the values):

- power status: GET the ComputerSystem, ``PowerState``;
- power on/off/cycle/reset/soft: ``ComputerSystem.Reset`` with the first ResetType the BMC
  allows for the action (``RESET_CHOICES``);
- boot override: PATCH ``Boot`` (``If-Match`` with the system's ETag): first the mode (UEFI or
  Legacy) when it must change, then target and Once/Continuous; "default" disables the override;
- the 60 s boot-flag timer is IPMI's: Redfish overrides have none, so nothing is sent;
- info: the system's Manufacturer, Model and BiosVersion and its manager's FirmwareVersion.

Errors are ``BmcUnreachable``, ``BmcAuthFailed``, ``BmcUnsupported``, ``BmcTimeout``,
``BmcTlsError`` (the certificate, named with ``bmc.verify_tls``) or ``BmcError``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from racker.errors import (
    BmcAuthFailed,
    BmcError,
    BmcTimeout,
    BmcUnreachable,
    BmcUnsupported,
)
from racker.events import Publish, discard
from racker.power import redfish_codec, sushy_client
from racker.power.base import (
    BmcInfo,
    BmcTarget,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)
from racker.power.sushy_client import RedfishSession, Verify
from racker.power.workers import BmcWorkers

log = logging.getLogger("racker.power")

T = TypeVar("T")

Steps = Callable[[RedfishSession], T]
# Logs in (the one choke point; tests may hand in another): target, verify, deadline.
Opener = Callable[[BmcTarget, Verify, float], RedfishSession]

# After these the session is dropped without logging out: the BMC is not answering.
_DEAD = (BmcUnreachable, BmcTimeout, BmcAuthFailed)


class RedfishDriver(PowerDriver):
    name = "redfish"

    def __init__(
        self,
        timeout: float = 20.0,
        publish: Publish = discard,
        verify_tls: bool | Path = True,
        max_workers: int = 64,
        opener: Opener = sushy_client.open_session,
    ) -> None:
        super().__init__(timeout, publish)
        self.verify: Verify = sushy_client.verify_argument(verify_tls)
        self._workers = BmcWorkers(max_workers, "racker-redfish")
        self._open = opener
        # By Redfish URL; an entry is touched only by the thread whose turn the BMC is.
        self._sessions: dict[str, RedfishSession] = {}
        self._sessions_lock = threading.Lock()

    async def close(self) -> None:
        """End every session (each logout bounded), then stop the threads."""
        with self._sessions_lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        try:
            if sessions:
                import asyncio

                await asyncio.wait_for(
                    asyncio.gather(*(asyncio.to_thread(s.close) for s in sessions)),
                    sushy_client.LOGOUT_SECONDS + 1,
                )
        except TimeoutError:
            log.debug("Redfish logouts still running after %g s", sushy_client.LOGOUT_SECONDS)
        finally:
            self._workers.shutdown()

    # -- operations ----------------------------------------------------------------------

    async def _do_power_status(self, target: BmcTarget) -> PowerState:
        def steps(s: RedfishSession) -> PowerState:
            value = s.system().json.get("PowerState")
            try:
                return redfish_codec.power_state(value)
            except ValueError:
                raise BmcError(
                    target.node, f"the BMC at {target.address} reports PowerState {value!r}"
                ) from None

        return await self._run(target, "power status", steps)

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        def steps(s: RedfishSession) -> None:
            system = s.system()
            reset = system.json.get("Actions", {}).get("#ComputerSystem.Reset", {})
            allowed = reset.get("ResetType@Redfish.AllowableValues")
            choice = redfish_codec.reset_type(action, allowed)
            if choice is None:
                raise BmcUnsupported(
                    target.node,
                    f"power {action}: the BMC at {target.address} allows only "
                    f"{', '.join(map(str, allowed or ()))} "
                    f"(racker uses {' or '.join(redfish_codec.RESET_CHOICES[action])})",
                )
            log.debug("%s: power %s is ResetType %s", target.node, action, choice)
            s.reset(choice)

        await self._run(target, f"power {action}", steps)

    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None:
        def steps(s: RedfishSession) -> None:
            try:
                mode = redfish_codec.mode_change(setting, s.system().json.get("Boot") or {})
                if mode is not None:
                    s.patch_boot(mode=mode)
                change = redfish_codec.boot_change(setting, s.system().json.get("Boot") or {})
            except redfish_codec.BootRefused as exc:
                raise BmcUnsupported(
                    target.node, f"the BMC at {target.address} refuses boot {setting}: {exc}"
                ) from None
            s.patch_boot(target=change.target, enabled=change.enabled)

        await self._run(target, f"set boot device {setting}", steps)

    async def _do_get_boot(self, target: BmcTarget) -> BootSetting:
        def steps(s: RedfishSession) -> BootSetting:
            boot = s.system().json.get("Boot") or {}
            try:
                return redfish_codec.boot_setting(boot)
            except ValueError as exc:
                raise BmcUnsupported(
                    target.node, f"the BMC at {target.address} has a {exc} racker does not set"
                ) from None

        return await self._run(target, "get boot device", steps)

    async def _do_disable_timer(self, target: BmcTarget) -> None:
        # IPMI clears boot flags 60 s after they are set; a Redfish override has no such timer.
        return None

    async def _do_info(self, target: BmcTarget) -> BmcInfo:
        def steps(s: RedfishSession) -> BmcInfo:
            data = s.system().json
            return BmcInfo(
                device_id=0,
                device_revision=0,
                firmware=s.manager_firmware(),
                ipmi_version="",
                manufacturer_id=0,
                product_id=0,
                manufacturer=str(data.get("Manufacturer") or ""),
                model=str(data.get("Model") or ""),
                bios=str(data.get("BiosVersion") or ""),
                protocol="redfish",
            )

        return await self._run(target, "get info", steps)

    # -- the deadline, serialisation and recovery around every operation ----------------

    async def _run(self, target: BmcTarget, what: str, steps: Steps[T]) -> T:
        deadline = time.monotonic() + self.timeout

        def busy() -> BmcError:
            return BmcTimeout(
                target.node,
                f"{what}: the previous operation on the BMC at {target.address} is still "
                f"running after {self.timeout:g} s",
                "the BMC is not answering; retry later",
            )

        def gave_up() -> BmcError:
            # The thread ends at the deadline too (every request is clamped to it) and drops
            # the session then; the next operation logs in afresh.
            return BmcTimeout(
                target.node,
                f"{what}: the BMC at {target.address} did not answer within {self.timeout:g} s",
                "the BMC may be restarting or overloaded; retry later",
            )

        return await self._workers.run(
            target.redfish_url,
            self.timeout,
            lambda: self._blocking(target, what, steps, deadline),
            busy=busy,
            gave_up=gave_up,
        )

    def _blocking(self, target: BmcTarget, what: str, steps: Steps[T], deadline: float) -> T:
        """Runs in a worker thread while the BMC is this operation's: reuse or open the
        session, run the steps, drop the session if the BMC stopped answering."""
        key = target.redfish_url
        session = self._sessions.get(key)
        if session is not None and session.target.credentials != target.credentials:
            self._forget(key, session, logout=True)  # new OEM credentials: a new login
            session = None
        if session is None:
            session = self._open(target, self.verify, deadline)
            with self._sessions_lock:
                self._sessions[key] = session
        session.begin(deadline, target)
        try:
            return steps(session)
        except Exception as exc:
            error = sushy_client.classify(exc, target, what)
            if isinstance(error, _DEAD):
                self._forget(key, session, logout=False)
            raise error from None

    def _forget(self, key: str, session: RedfishSession, *, logout: bool) -> None:
        with self._sessions_lock:
            if self._sessions.get(key) is session:
                del self._sessions[key]
        if logout:
            session.close()
        else:
            session.forget()
