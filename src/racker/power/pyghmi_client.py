"""The one place racker talks to pyghmi (layer 2; blocking, called from worker threads).

What pyghmi does that matters here (pyghmi 1.6, ``pyghmi/ipmi/private/session.py``):

- ``Session`` objects are cached in class-level dicts shared by the whole process:
  ``bmc_handlers[sockaddr][local_port]`` (logged-in sessions), ``initting_sessions[(bmc, user,
  password, port, kg)]`` (logins in progress) and ``keepalive_sessions``/``waiting_sessions``
  (timers). A new ``Command`` to the same BMC reuses a cached session, even one whose BMC has
  since died or restarted.
- ``initting_sessions`` is cleaned with the *encoded* user/password as key, so with ``str``
  credentials the entry stays forever and the next ``Command`` gets the old (logged out,
  broken) session. Passing ``bytes`` keeps both keys equal.
- An unreachable BMC fails the login after ~5 s with an empty message; a BMC that dies during
  a session makes the next command wait ~28 s. Callers therefore bound every operation
  themselves (``IpmiDriver``) and call ``evict`` when they give up, which marks the session
  broken without sending anything, so the blocked thread returns within a retry interval.

- A reply can sit unprocessed for a whole retry interval (~1 s): a thread checks pyghmi's
  packet queue, the reply is queued, then the thread starts waiting for the *next* packet
  (``session._poller``/``_io_wait``, a lost wake-up; seen on the wire as an answered request
  sent again ~1 s later). Every caller of ``_io_wait`` re-checks its state in a loop, so
  ``_patch_lost_wakeups`` caps each wait at 50 ms: a missed reply then costs 50 ms, not 1 s.

racker opens one session per operation and logs out at the end (as ipmitool and Ironic do):
no session outlives an operation, so a restarted BMC is simply logged in to again.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from racker.errors import BmcAuthFailed, BmcError, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.power import ipmi_codec
from racker.power.base import BmcTarget

log = logging.getLogger("racker.power")

# pyghmi's login error strings (RAKP status codes, IPMI v2.0 table 13-15) that mean the
# user name, password, role or Kg were refused.
_AUTH_ERRORS = (
    "Incorrect password",
    "Unauthorized name",
    "Invalid username length",
    "Invalid role",
    "Unauthorized role",
    "Invalid RAKP4 integrity code",
    "Invalid integrity check value",
)
_UNSUPPORTED_ERRORS = (
    "No Cipher suite match",
    "Invalid authentication algorithm",
    "Invalid integrity algorithm",
    "Invalid confidentiality algorithm",
)
_AUTH_HINT = "check the OEM files ipmi_user and ipmi_password against the BMC's users"
_UNREACHABLE_HINT = (
    "check that the BMC is powered and cabled, that its address is right "
    "(racker leases / bmc.addresses in racker.yaml) and that UDP port 623 is reachable"
)


def scrub(text: str, target: BmcTarget) -> str:
    """Remove the password from text that came from a third party (defence in depth)."""
    secret = target.credentials.reveal()
    return text.replace(secret, "***") if secret else text


def login_error(target: BmcTarget, message: object) -> BmcError:
    """Classify a pyghmi login failure."""
    text = "" if message in (None, "None") else scrub(str(message), target).strip()
    where = f"the BMC at {target.address}"
    if not text or text == "timeout":
        return BmcUnreachable(target.node, f"no answer from {where}", _UNREACHABLE_HINT)
    if any(text.startswith(e) for e in _AUTH_ERRORS):
        return BmcAuthFailed(target.node, f"{where} rejected the credentials ({text})", _AUTH_HINT)
    if any(text.startswith(e) for e in _UNSUPPORTED_ERRORS):
        return BmcUnsupported(
            target.node,
            f"{where} offers no cipher suite racker can use ({text})",
            "enable cipher suite 3 (RAKP-HMAC-SHA1) or 17 on the BMC",
        )
    if text.startswith("Insufficient resources"):
        return BmcUnreachable(
            target.node,
            f"{where} has no free session ({text})",
            "wait a minute for old sessions to time out, or close other IPMI clients",
        )
    if text.startswith("Unable to transmit"):
        return BmcUnreachable(target.node, f"cannot send to {where}", _UNREACHABLE_HINT)
    return BmcUnreachable(target.node, f"cannot log in to {where}: {text}", _UNREACHABLE_HINT)


def command_error(target: BmcTarget, request: ipmi_codec.Request, code: int) -> BmcError:
    """Classify a completion code other than 0 (or pyghmi's 0xffff: no reply)."""
    where = f"the BMC at {target.address}"
    if code == 0xFFFF:
        return BmcTimeout(
            target.node, f"{request.name}: {where} stopped answering", _UNREACHABLE_HINT
        )
    detail = ipmi_codec.describe_code(code)
    if code in ipmi_codec.UNSUPPORTED_CODES:
        return BmcUnsupported(target.node, f"{request.name}: {where} answered {detail}")
    if code in ipmi_codec.PRIVILEGE_CODES:
        return BmcAuthFailed(
            target.node,
            f"{request.name}: {where} answered {detail}",
            "give the IPMI user the operator or administrator privilege",
        )
    return BmcError(target.node, f"{request.name}: {where} answered {detail}")


class PyghmiSession:
    """One logged-in IPMI session (blocking; use from one thread at a time)."""

    def __init__(self, target: BmcTarget, ipmi_session: Any) -> None:
        self.target = target
        self._session = ipmi_session

    def send(self, request: ipmi_codec.Request) -> bytes:
        """Send one request and return the reply's data (completion code 0), else raise."""
        from pyghmi import exceptions

        try:
            reply = self._session.raw_command(
                netfn=request.netfn, command=request.command, data=tuple(request.data)
            )
        except exceptions.IpmiException as exc:
            raise BmcUnreachable(
                self.target.node,
                f"{request.name}: lost the session with the BMC at {self.target.address}"
                f" ({scrub(str(exc), self.target)})",
                _UNREACHABLE_HINT,
            ) from None
        if reply is None:
            raise command_error(self.target, request, 0xFFFF)
        code = int(reply.get("code", 0))
        if code or "error" in reply:
            raise command_error(self.target, request, code or 0xFF)
        return bytes(reply.get("data", b""))

    def close(self) -> None:
        """Log out (Close Session, not retried: at most ~1 s when the BMC is gone)."""
        try:
            self._session.logout()
        except Exception as exc:  # a failed logout must not hide the operation's result
            log.debug("%s: logout failed: %s", self.target.node, type(exc).__name__)
        _forget(self._session)

    def discard(self) -> None:
        """Break this session without sending anything (after an error), so no later
        operation reuses it. Only this session: another login to the same BMC, by a newer
        operation, must not be disturbed."""
        from pyghmi.ipmi.private import session as ipmisession

        _break(self._session, ipmisession.Session.bmc_handlers)


_WAKE_INTERVAL = 0.05
_patch_lock = threading.Lock()
_patched = False


def _patch_lost_wakeups() -> None:
    global _patched  # noqa: PLW0603 - pyghmi's module state is process-wide too
    with _patch_lock:
        if _patched:
            return
        from pyghmi.ipmi.private import session as ipmisession

        original = getattr(ipmisession, "_io_wait", None)
        _patched = True
        if original is None:  # another pyghmi release: nothing to fix, or not this way
            log.debug("pyghmi has no session._io_wait; lost wake-up fix not applied")
            return

        def _io_wait(timeout: float, myaddr: Any = None, evq: Any = None) -> Any:
            return original(min(timeout, _WAKE_INTERVAL), myaddr, evq)

        ipmisession._io_wait = _io_wait


def open_session(target: BmcTarget) -> PyghmiSession:
    """Log in to the BMC (blocking). Raises a typed ``BmcError``."""
    from pyghmi import exceptions
    from pyghmi.ipmi.private import session as ipmisession

    _patch_lost_wakeups()
    try:
        # bytes credentials: see the module docstring (initting_sessions key mismatch).
        ipmi_session = ipmisession.Session(
            bmc=target.host,
            userid=target.credentials.user.encode("utf-8"),
            password=target.credentials.reveal().encode("utf-8"),
            port=target.port,
        )
    except exceptions.IpmiException as exc:
        # pyghmi already dropped the failed login from its caches (bytes credentials).
        raise login_error(target, exc.args[0] if exc.args else None) from None
    except (socket.gaierror, UnicodeError) as exc:
        raise BmcUnreachable(
            target.node, f"cannot resolve the BMC host {target.host!r}: {exc}", _UNREACHABLE_HINT
        ) from None
    except Exception as exc:  # pyghmi internals (e.g. a session broken by a racing thread)
        raise BmcUnreachable(
            target.node,
            f"login to the BMC at {target.address} failed inside the IPMI client "
            f"({type(exc).__name__})",
            "retry",
        ) from None
    return PyghmiSession(target, ipmi_session)


def evict(host: str, port: int) -> int:
    """Forget every cached pyghmi session to ``host``:``port`` without sending anything.

    A thread blocked in that session's login or command sees it broken at its next wake-up
    (pyghmi retries every 1-2 s) and returns with an error. Returns how many were evicted.
    """
    from pyghmi.ipmi.private import session as ipmisession

    cls = ipmisession.Session
    victims: list[Any] = []
    for key, sess in list(cls.initting_sessions.items()):
        if key[0] == host and key[3] == port:
            cls.initting_sessions.pop(key, None)
            victims.append(sess)
    for by_port in list(cls.bmc_handlers.values()):
        if not isinstance(by_port, dict):
            continue
        for sess in list(by_port.values()):
            if getattr(sess, "bmc", None) == host and getattr(sess, "port", None) == port:
                victims.append(sess)
    seen: set[int] = set()
    for sess in victims:
        if id(sess) in seen:
            continue
        seen.add(id(sess))
        _break(sess, cls.bmc_handlers)
    return len(seen)


def _forget(sess: Any) -> None:
    from pyghmi.ipmi.private import session as ipmisession

    _remove(sess, ipmisession.Session.bmc_handlers)


def _break(sess: Any, table: dict[Any, Any]) -> None:
    # logged = 0 first: pyghmi's logout() would otherwise send Close Session and wait for a
    # reply from a BMC we already know is not answering.
    sess.logged = 0
    if not hasattr(sess, "allsockaddrs"):
        sess.allsockaddrs = []
    try:
        sess._mark_broken("session evicted by racker")
    except Exception as exc:  # pyghmi internals raced with the owning thread; still broken
        log.debug("evicting a pyghmi session: %s", type(exc).__name__)
    sess.broken = True
    sess.logging = False
    # Remove it from the per-address table even if _mark_broken stopped half-way.
    _remove(sess, table)


def _remove(sess: Any, table: dict[Any, Any]) -> None:
    for sockaddr in list(table):
        by_port = table.get(sockaddr)
        if not isinstance(by_port, dict):
            continue
        for local_port, cached in list(by_port.items()):
            if cached is sess:
                by_port.pop(local_port, None)
        if not by_port:
            table.pop(sockaddr, None)
