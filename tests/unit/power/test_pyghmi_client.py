"""How pyghmi's failures become racker's errors, and eviction of cached pyghmi sessions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyghmi.ipmi.private import session as ipmisession

from racker.errors import BmcAuthFailed, BmcError, BmcTimeout, BmcUnreachable, BmcUnsupported
from racker.power import ipmi_codec as c
from racker.power.base import BmcCredentials, BmcTarget
from racker.power.pyghmi_client import command_error, evict, login_error, scrub

from .conftest import PASSWORD

T = BmcTarget("worker-000003", "10.0.0.131", BmcCredentials("admin", PASSWORD))


@pytest.mark.parametrize(
    ("message", "error", "text"),
    [
        (None, BmcUnreachable, "no answer from the BMC at 10.0.0.131"),
        ("None", BmcUnreachable, "no answer"),
        ("timeout", BmcUnreachable, "no answer"),
        ("Incorrect password provided", BmcAuthFailed, "rejected the credentials"),
        ("Unauthorized name in RAKP2", BmcAuthFailed, "rejected the credentials"),
        ("Invalid RAKP4 integrity code (wrong Kg?)", BmcAuthFailed, "rejected"),
        ("No Cipher suite match with proposed security algorithms", BmcUnsupported, "cipher"),
        ("Insufficient resources to create new session", BmcUnreachable, "no free session"),
        ("Unable to transmit to specified address", BmcUnreachable, "cannot send"),
        ("something odd", BmcUnreachable, "cannot log in to the BMC at 10.0.0.131: something odd"),
    ],
)
def test_login_errors(message: str | None, error: type[BmcError], text: str) -> None:
    err = login_error(T, message)
    assert type(err) is error
    assert text in str(err)
    assert str(err).startswith("worker-000003: ")
    assert err.hint


@pytest.mark.parametrize(
    ("code", "error", "retryable"),
    [
        (0xFFFF, BmcTimeout, True),
        (0xC1, BmcUnsupported, False),
        (0x80, BmcUnsupported, False),
        (0xD4, BmcAuthFailed, False),
        (0xC0, BmcError, True),
    ],
)
def test_command_errors(code: int, error: type[BmcError], retryable: bool) -> None:
    err = command_error(T, c.chassis_status(), code)
    assert type(err) is error
    assert err.retryable is retryable
    assert "Get Chassis Status" in str(err)


def test_scrub_and_messages_never_carry_the_password() -> None:
    assert scrub(f"login as admin/{PASSWORD} failed", T) == "login as admin/*** failed"
    assert PASSWORD not in str(login_error(T, f"weird {PASSWORD}"))


class FakeSession:
    def __init__(self, bmc: str, port: int) -> None:
        self.bmc, self.port = bmc, port
        self.logged = 1
        self.broken = False
        self.marked: Any = None

    def _mark_broken(self, error: Any = None) -> None:
        assert self.logged == 0, "must not try to log out of a silent BMC"
        self.marked = error


@pytest.fixture
def caches() -> Iterator[None]:
    cls = ipmisession.Session
    saved = dict(cls.initting_sessions), dict(cls.bmc_handlers)
    yield
    cls.initting_sessions.clear()
    cls.initting_sessions.update(saved[0])
    cls.bmc_handlers.clear()
    cls.bmc_handlers.update(saved[1])


@pytest.mark.usefixtures("caches")
def test_evict_breaks_and_forgets_only_that_bmcs_sessions() -> None:
    cls = ipmisession.Session
    logging_in = FakeSession("10.0.0.131", 623)
    logged_in = FakeSession("10.0.0.131", 623)
    other = FakeSession("10.0.0.132", 623)
    cls.initting_sessions[("10.0.0.131", b"admin", b"pw", 623, None)] = logging_in
    cls.bmc_handlers[("::ffff:10.0.0.131", 623, 0, 0)] = {40001: logged_in}
    cls.bmc_handlers[("::ffff:10.0.0.132", 623, 0, 0)] = {40002: other}
    assert evict("10.0.0.131", 623) == 2
    assert logging_in.broken and logged_in.broken and not other.broken
    assert logged_in.marked == "session evicted by racker"
    assert ("::ffff:10.0.0.131", 623, 0, 0) not in cls.bmc_handlers
    assert ("10.0.0.131", b"admin", b"pw", 623, None) not in cls.initting_sessions
    assert cls.bmc_handlers[("::ffff:10.0.0.132", 623, 0, 0)] == {40002: other}
    assert evict("10.0.0.131", 623) == 0
