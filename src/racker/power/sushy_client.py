"""The one place racker talks to sushy, OpenStack's Redfish client (layer 2; blocking, called
from worker threads).

What sushy (5.x) does that matters here:

- ``Sushy(...)`` GETs the service root and logs in at once (``SessionOrBasicAuth``): it POSTs
  to the SessionService for an ``X-Auth-Token`` and, when the BMC has no sessions or refuses
  the POST, falls back to HTTP Basic auth on every request. A session the BMC forgot (it
  restarted, or timed the session out) is renewed by sushy on the next 401.
- Its connector retries a failed connection 3 times 2 s apart and a GET answered 5xx 10 times
  3 s apart. racker asks for one attempt (``server_side_retries=1``) and bounds every request by
  the operation's deadline with its own ``HTTPAdapter`` (``_DeadlineAdapter``), so a thread
  racker gave up on ends by the deadline too. It sends ``Connection: close`` (some BMCs choke
  on kept-alive connections): a request is a new TCP (and TLS) connection.
- PATCH sends ``If-Match`` with the ETag of the resource's last GET and, on 412, tries again
  the ways sushy knows (weak ETag made strong, then none).
- It logs every request at DEBUG (``Password`` and ``X-Auth-Token`` keys masked by its
  ``sanitize``) and routine events at WARNING/ERROR (the fallback to Basic auth logs an ERROR).
  ``racker.power.redact`` shows sushy's records only in racker's -vv output (as DEBUG, through
  racker's handlers: sushy's own loggers have none), and removes passwords, session tokens and
  ``Authorization``/``X-Auth-Token`` values from them.
- ``Sushy.__del__`` deletes the session: racker ends sessions itself (``RedfishSession``), and
  resets a dead BMC's session first so garbage collection never waits on it.

The private connector attribute ``_session`` (requests' Session, to mount the adapter) is the
one reach into sushy's internals; ``tests/unit/power/test_sushy_client.py`` notices if it moves.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from racker.errors import (
    BmcAuthFailed,
    BmcError,
    BmcNotConfigured,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
    BmcUnsupported,
)
from racker.model import parse_mac
from racker.power.base import BmcTarget
from racker.power.redact import REDACT, scrub

log = logging.getLogger("racker.power")

Verify = bool | str  # requests' verify: check certificates, or not, or against this CA bundle
LOGOUT_SECONDS = 2.0  # ending a session is worth at most this much after an operation

UNREACHABLE_HINT = (
    "check that the BMC is powered and cabled, that its address is right (racker leases / "
    "bmc.addresses in racker.yaml) and that it serves Redfish over HTTPS"
)
AUTH_HINT = "check the OEM files ipmi_user and ipmi_password against the BMC's users"
TLS_HINT = (
    "set bmc.verify_tls in racker.yaml to a CA bundle that holds the BMC's certificate "
    "(or false to skip the check)"
)


def verify_argument(verify_tls: bool | Path) -> Verify:
    return str(verify_tls) if isinstance(verify_tls, Path) else verify_tls


# -- deadlines -------------------------------------------------------------------------


class _DeadlineAdapter(HTTPAdapter):
    """Clamps every request's timeout to what is left of the operation's deadline."""

    def __init__(self) -> None:
        super().__init__()
        self.deadline = math.inf  # time.monotonic() value

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise requests.exceptions.ConnectTimeout(
                "racker's deadline for this operation has passed", request=request
            )
        timeout = kwargs.get("timeout")
        if isinstance(timeout, tuple):
            kwargs["timeout"] = tuple(min(t or remaining, remaining) for t in timeout)
        else:
            kwargs["timeout"] = min(timeout or remaining, remaining)
        return super().send(request, *args, **kwargs)


# -- sessions --------------------------------------------------------------------------


class RedfishSession:
    """A logged-in client of one BMC (blocking; one thread at a time, which ``BmcWorkers``
    guarantees). ``begin`` starts each operation for one node: a BMC that manages several
    systems (a blade chassis) serves several nodes through one session, each its own system.
    """

    def __init__(
        self, target: BmcTarget, root: Any, auth: Any, adapter: _DeadlineAdapter, system: Any
    ) -> None:
        self.target = target
        self.root = root
        self._auth = auth
        self._adapter = adapter
        self._systems: dict[tuple[str, ...], Any] = {_node_key(target): system}
        self._current = target
        self._operation = 0
        self._fetched: dict[tuple[str, ...], int] = {_node_key(target): 1}  # fetched in login

    def begin(self, deadline: float, target: BmcTarget) -> None:
        self._adapter.deadline = deadline
        self._current = target
        self._operation += 1

    def system(self) -> Any:
        """The node's ComputerSystem, fetched once per operation (power state and boot
        override are never older than the operation that reads them)."""
        key = _node_key(self._current)
        system = self._systems.get(key)
        if system is None:
            system = self._systems[key] = _choose_system(self.root, self._current)
        elif self._fetched.get(key) != self._operation:
            system.refresh(force=True)
        self._fetched[key] = self._operation
        return system

    def changed(self) -> None:
        """After a PATCH or an action: the next ``system()`` fetches again."""
        self._fetched.pop(_node_key(self._current), None)

    def reset(self, reset_type: str) -> None:
        """POST ``ComputerSystem.Reset`` (sushy checks the value against the allowed ones)."""
        from sushy.resources import constants

        self.system().reset_system(constants.ResetType(reset_type))
        self.changed()

    def patch_boot(
        self, target: str | None = None, enabled: str | None = None, mode: str | None = None
    ) -> None:
        """PATCH ``Boot`` (with ``If-Match``: the system's ETag)."""
        from sushy.resources.system import constants

        self.system().set_system_boot_options(
            target=constants.BootSource(target) if target is not None else None,
            enabled=enabled,
            mode=mode,
        )
        self.changed()

    def manager_firmware(self) -> str:
        managers = self.system().managers
        return str(managers[0].firmware_version or "") if managers else ""

    def close(self) -> None:
        """Log out (DELETE the session, at most ``LOGOUT_SECONDS``), then forget it."""
        self._adapter.deadline = time.monotonic() + LOGOUT_SECONDS
        try:
            self._auth.close()
        except Exception as exc:  # a failed logout must not hide the operation's result
            log.debug("%s: Redfish logout failed: %s", self.target.node, type(exc).__name__)
        self.forget()

    def forget(self) -> None:
        """Drop the session without a word to the BMC (it is not answering)."""
        try:
            self._auth.reset_session_attrs()  # so sushy's __del__ sends nothing
        except Exception as exc:
            log.debug("%s: resetting a Redfish session: %s", self.target.node, type(exc).__name__)
        self.root._conn.close()


def open_session(target: BmcTarget, verify: Verify, deadline: float) -> RedfishSession:
    """Log in to the BMC's Redfish service and choose the node's system. Raises ``BmcError``."""
    import sushy
    from sushy import auth as sushy_auth
    from sushy import connector as sushy_connector

    password = target.credentials.reveal()
    REDACT.add(password)
    REDACT.install()
    adapter = _DeadlineAdapter()
    adapter.deadline = deadline
    connector = sushy_connector.Connector(
        target.redfish_url,
        verify=verify,
        server_side_retries=1,
        server_side_retries_delay=0.2,
        default_request_timeout=60,
    )
    connector._session.mount("https://", adapter)
    connector._session.mount("http://", adapter)
    auth = sushy_auth.SessionOrBasicAuth(username=target.credentials.user, password=password)
    try:
        root = sushy.Sushy(target.redfish_url, auth=auth, connector=connector)
        REDACT.add(auth.get_session_key())
        system = _choose_system(root, target)
    except Exception as exc:
        error = classify(exc, target, "log in")
        if auth.get_session_key() and not isinstance(error, BmcUnreachable | BmcTimeout):
            adapter.deadline = time.monotonic() + LOGOUT_SECONDS
            try:
                auth.close()
            except Exception as logout:
                log.debug("%s: Redfish logout failed: %s", target.node, type(logout).__name__)
        if auth.get_session_key():
            auth.reset_session_attrs()  # nothing left for sushy's __del__ to send
        connector.close()
        raise error from None
    log.debug(
        "%s: logged in to %s (%s auth)",
        target.node,
        target.redfish_url,
        "session" if auth.get_session_key() else "basic",
    )
    return RedfishSession(target, root, auth, adapter, system)


def _node_key(target: BmcTarget) -> tuple[str, ...]:
    macs = (parse_mac(m) for m in (*target.node_macs, target.mac or ""))
    return tuple(sorted({m for m in macs if m}))


def _choose_system(root: Any, target: BmcTarget) -> Any:
    """The only ComputerSystem, or among several the one with one of the node's MACs."""
    members = list(root.get_system_collection().members_identities)
    if not members:
        raise BmcUnsupported(
            target.node, f"the Redfish service at {target.redfish_url} lists no system"
        )
    wanted = {parse_mac(m) for m in (*target.node_macs, target.mac or "") if parse_mac(m)}
    if len(members) == 1 or not wanted:
        return root.get_system(members[0])
    for path in members:
        system = root.get_system(path)
        found = {parse_mac(str(mac)) for mac in _interface_macs(system)}
        if found & wanted:
            return system
    raise BmcNotConfigured(
        target.node,
        f"none of the {len(members)} systems at {target.redfish_url} has a NIC with the "
        f"node's MAC ({', '.join(sorted(m for m in wanted if m))})",
        "check the node's MACs in nodes.csv, or its BMC's address",
    )


def _interface_macs(system: Any) -> Iterator[str]:
    for nic in system.ethernet_interfaces.get_members():
        for mac in (nic.mac_address, nic.permanent_mac_address):
            if mac:
                yield mac


# -- errors ----------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify(exc: BaseException, target: BmcTarget, what: str) -> BmcError:
    """A sushy or requests failure as racker's typed error; no secret in its text."""
    from sushy import exceptions as sx

    where = f"the BMC at {target.redfish_url}"
    node = target.node
    if isinstance(exc, BmcError):
        return exc
    chain = list(_causes(exc))
    tls = next((e for e in chain if isinstance(e, requests.exceptions.SSLError)), None)
    if tls is not None:
        text = scrub(str(tls))
        if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
            detail = text.rsplit("certificate verify failed:", 1)[-1].split("(_ssl")[0].strip()
            return BmcTlsError(
                node,
                f"{what}: the TLS certificate of {where} failed verification ({detail})",
                TLS_HINT,
            )
        return BmcUnreachable(
            node,
            f"{what}: no TLS with {where} ({_short(text)})",
            "if the BMC serves plain HTTP, write http://host:port in bmc.addresses",
        )
    if isinstance(exc, OSError) and "CA certificate bundle" in str(exc):
        return BmcTlsError(node, f"{what}: {scrub(str(exc))}", TLS_HINT)
    if isinstance(exc, sx.AccessError):
        if exc.status_code == 403:
            return BmcAuthFailed(
                node,
                f"{what}: {where} refused it to this user (HTTP 403)",
                "give the BMC user the Operator or Administrator role",
            )
        return BmcAuthFailed(node, f"{where} rejected the credentials (HTTP 401)", AUTH_HINT)
    if isinstance(exc, sx.ResourceNotFoundError):
        return BmcError(node, f"{what}: {where} answered HTTP 404 ({_short(scrub(str(exc)))})")
    if isinstance(exc, sx.HTTPError) and (
        isinstance(exc, sx.BadRequestError) or exc.status_code in (405, 501)
    ):
        return BmcUnsupported(
            node, f"{what}: {where} refused (HTTP {exc.status_code}: {_detail(exc)})"
        )
    if isinstance(exc, sx.HTTPError):
        return BmcError(node, f"{what}: {where} answered HTTP {exc.status_code}: {_detail(exc)}")
    if isinstance(exc, sx.InvalidParameterValueError | sx.MissingAttributeError):
        return BmcUnsupported(node, f"{what}: {where} does not offer it ({scrub(str(exc))})")
    if isinstance(exc, sx.MissingActionError):
        return BmcUnsupported(node, f"{what}: {where} has no such action ({scrub(str(exc))})")
    return _network_error(chain, node, where, what, exc)


def _network_error(
    chain: list[BaseException], node: str, where: str, what: str, exc: BaseException
) -> BmcError:
    if any(isinstance(e, requests.exceptions.ConnectTimeout) for e in chain):
        return BmcUnreachable(node, f"{what}: no answer from {where}", UNREACHABLE_HINT)
    if any(isinstance(e, requests.exceptions.ReadTimeout) for e in chain):
        return BmcTimeout(
            node, f"{what}: {where} stopped answering", "the BMC may be busy or restarting"
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc):
        return BmcUnreachable(
            node, f"{what}: {where} refused the connection (no Redfish there)", UNREACHABLE_HINT
        )
    if any(isinstance(e, requests.exceptions.ConnectionError) for e in chain):
        return BmcUnreachable(
            node, f"{what}: lost the connection to {where} ({_short(str(exc))})", UNREACHABLE_HINT
        )
    from sushy import exceptions as sx

    if isinstance(exc, sx.SushyError):
        return BmcError(node, f"{what}: Redfish client failure with {where}: {scrub(str(exc))}")
    # sushy parses JSON it did not check: a malformed answer ends in KeyError/TypeError.
    return BmcError(
        node,
        f"{what}: Redfish client failure with {where} ({type(exc).__name__})",
        "retry; report a bug if it persists",
    )


def _detail(exc: Any) -> str:
    return _short(scrub(str(exc.detail or exc.code or "no detail")))


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
