"""IPMI v2.0 (RMCP+) power driver on pyghmi (layer 2).

pyghmi is blocking, so each operation runs in a worker thread (``racker.power.workers``: a
deadline, one operation at a time per BMC, many BMCs at once): one session per operation (log
in, send the requests, log out; see ``pyghmi_client``). pyghmi's own waits (~5 s for an
unreachable BMC, ~28 s for one that died mid-session) never reach the caller.

Recovery: a failed operation breaks its own session; one that times out evicts every cached
pyghmi session to that BMC (the stuck thread then returns within a retry interval). The next
operation logs in afresh, so a restarted BMC works again without restarting racker.

Errors are ``BmcUnreachable``, ``BmcAuthFailed``, ``BmcUnsupported``, ``BmcTimeout`` (or
``BmcError`` for other completion codes); none contains the password.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from racker.errors import (
    BmcError,
    BmcNotConfigured,
    BmcTimeout,
    BmcUnreachable,
    BmcUnsupported,
)
from racker.events import Publish, discard
from racker.power import ipmi_codec, pyghmi_client
from racker.power.base import (
    BmcInfo,
    BmcTarget,
    BootSetting,
    PowerAction,
    PowerDriver,
    PowerState,
)
from racker.power.pyghmi_client import PyghmiSession
from racker.power.workers import BmcWorkers

log = logging.getLogger("racker.power")

T = TypeVar("T")

# What a blocking operation does with a logged-in session.
Steps = Callable[[PyghmiSession], T]
# Opens a session (the one choke point; tests may hand in another).
Opener = Callable[[BmcTarget], PyghmiSession]


class _Progress:
    """Written by the worker thread, read by the event loop after a timeout."""

    def __init__(self) -> None:
        self.logged_in = threading.Event()


class IpmiDriver(PowerDriver):
    name = "ipmi"

    def __init__(
        self,
        timeout: float = 20.0,
        publish: Publish = discard,
        max_workers: int = 64,
        opener: Opener = pyghmi_client.open_session,
    ) -> None:
        super().__init__(timeout, publish)
        self._workers = BmcWorkers(max_workers, "racker-ipmi")
        self._open = opener

    def validate(self, target: BmcTarget) -> None:
        super().validate(target)
        if target.scheme is not None:
            raise BmcNotConfigured(
                target.node,
                f"bmc.addresses gives a Redfish URL ({target.address}) but the driver is ipmi",
                "set bmc.driver to redfish or auto, or give host or host:port",
            )

    async def close(self) -> None:
        self._workers.shutdown()

    # -- operations ----------------------------------------------------------------------

    async def _do_power_status(self, target: BmcTarget) -> PowerState:
        def steps(s: PyghmiSession) -> PowerState:
            return ipmi_codec.decode_power_state(s.send(ipmi_codec.chassis_status()))

        return await self._run(target, "power status", steps)

    async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
        def steps(s: PyghmiSession) -> None:
            s.send(ipmi_codec.chassis_control(action))

        await self._run(target, f"power {action}", steps)

    async def _do_set_boot(self, target: BmcTarget, setting: BootSetting) -> None:
        if setting.device not in ipmi_codec.IPMI_DEVICES:
            raise BmcUnsupported(
                target.node,
                f"IPMI has no boot device {setting.device} (the BMC at {target.address} was "
                "not asked)",
                "UEFI HTTP boot needs Redfish: bmc.driver redfish or auto",
            )

        def steps(s: PyghmiSession) -> None:
            _keep_boot_flags(s)
            s.send(ipmi_codec.set_boot_flags(setting))

        await self._run(target, f"set boot device {setting}", steps)

    async def _do_get_boot(self, target: BmcTarget) -> BootSetting:
        def steps(s: PyghmiSession) -> BootSetting:
            return ipmi_codec.decode_boot_flags(s.send(ipmi_codec.get_boot_flags()))

        return await self._run(target, "get boot device", steps)

    async def _do_disable_timer(self, target: BmcTarget) -> None:
        def steps(s: PyghmiSession) -> None:
            s.send(ipmi_codec.keep_boot_flags())

        await self._run(target, "disable boot flag timer", steps)

    async def _do_info(self, target: BmcTarget) -> BmcInfo:
        def steps(s: PyghmiSession) -> BmcInfo:
            return ipmi_codec.decode_device_id(s.send(ipmi_codec.device_id()))

        return await self._run(target, "get device id", steps)

    # -- the deadline, serialisation and recovery around every operation ----------------

    async def _run(self, target: BmcTarget, what: str, steps: Steps[T]) -> T:
        progress = _Progress()

        def busy() -> BmcError:
            return BmcTimeout(
                target.node,
                f"{what}: the previous operation on the BMC at {target.address} is still "
                f"running after {self.timeout:g} s",
                "the BMC is not answering; retry later",
            )

        def gave_up() -> BmcError:
            evicted = pyghmi_client.evict(target.host, target.port)
            log.debug("%s: gave up on %s; evicted %d session(s)", target.node, what, evicted)
            if progress.logged_in.is_set():
                return BmcTimeout(
                    target.node,
                    f"{what}: the BMC at {target.address} stopped answering; gave up after "
                    f"{self.timeout:g} s",
                    "the BMC may be restarting or overloaded; retry later",
                )
            return BmcUnreachable(
                target.node,
                f"{what}: no answer from the BMC at {target.address} within {self.timeout:g} s",
                pyghmi_client._UNREACHABLE_HINT,
            )

        return await self._workers.run(
            (target.host, target.port),
            self.timeout,
            lambda: self._blocking(target, what, steps, progress),
            busy=busy,
            gave_up=gave_up,
        )

    def _blocking(self, target: BmcTarget, what: str, steps: Steps[T], progress: _Progress) -> T:
        """Runs in a worker thread: log in, run the steps, log out."""
        session = self._open(target)
        progress.logged_in.set()
        try:
            return steps(session)
        except ipmi_codec.ReplyError as exc:
            session.discard()
            raise BmcError(
                target.node, f"{what}: the BMC at {target.address} sent a bad reply: {exc}"
            ) from None
        except BmcError:
            session.discard()
            raise
        except Exception as exc:
            # pyghmi raises assorted TypeError/KeyError on unexpected packets; keep the type
            # only (its text could in principle echo session data).
            session.discard()
            raise BmcError(
                target.node,
                f"{what}: IPMI client failure talking to {target.address} ({type(exc).__name__})",
                "retry; report a bug if it persists",
            ) from None
        finally:
            session.close()


def _keep_boot_flags(session: PyghmiSession) -> None:
    # Some BMCs refuse parameter 3; the boot device can still be set, only the 60 s timer
    # stays armed (so power on soon after). Anything else is a real error.
    try:
        session.send(ipmi_codec.keep_boot_flags())
    except BmcError as exc:
        if exc.retryable:
            raise
        log.info("%s: BMC refused to keep boot flags: %s", session.target.node, exc.message)
