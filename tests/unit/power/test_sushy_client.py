"""sushy_client: errors classified, secrets kept out of logs, every request inside the deadline."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import requests
from sushy import connector as sushy_connector
from sushy import exceptions as sx

from racker.errors import (
    BmcAuthFailed,
    BmcError,
    BmcTimeout,
    BmcTlsError,
    BmcUnreachable,
    BmcUnsupported,
)
from racker.power import redact, sushy_client
from racker.power.base import BmcCredentials, BmcTarget

from .conftest import PASSWORD

TARGET = BmcTarget("node1", "10.0.0.1", BmcCredentials("admin", PASSWORD), 443, scheme="https")
URL = "https://10.0.0.1/redfish/v1/Systems/1"


def response(status: int, message: str = "") -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    body = {"error": {"code": "Base.1.0.GeneralError", "message": message}}
    reply._content = json.dumps(body).encode()
    return reply


def raised_from(cause: BaseException) -> sx.ConnectionError:
    """A sushy ConnectionError raised while handling ``cause``, as sushy's connector does."""
    try:
        try:
            raise cause
        except Exception as e:
            raise sx.ConnectionError(url=URL, error=e) from None
    except sx.ConnectionError as wrapped:
        wrapped.__context__ = cause
        return wrapped


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (sx.AccessError("GET", URL, response(401)), BmcAuthFailed, "rejected the credentials"),
        (sx.AccessError("POST", URL, response(403)), BmcAuthFailed, "refused it to this user"),
        (sx.BadRequestError("PATCH", URL, response(400, "no")), BmcUnsupported, "HTTP 400: no"),
        (sx.ServerSideError("POST", URL, response(501, "nope")), BmcUnsupported, "HTTP 501"),
        (sx.ServerSideError("GET", URL, response(503, "busy")), BmcError, "HTTP 503: busy"),
        (sx.ResourceNotFoundError("GET", URL, response(404)), BmcError, "HTTP 404"),
        (
            sx.InvalidParameterValueError(parameter="value", value="On", valid_values="ForceOn"),
            BmcUnsupported,
            "does not offer it",
        ),
        (
            raised_from(
                requests.exceptions.SSLError(
                    "[SSL: CERTIFICATE_VERIFY_FAILED] "
                    "certificate verify failed: self-signed "
                    "certificate (_ssl.c:1006)"
                )
            ),
            BmcTlsError,
            "failed verification (self-signed certificate)",
        ),
        (
            raised_from(requests.exceptions.SSLError("[SSL: WRONG_VERSION_NUMBER] wrong version")),
            BmcUnreachable,
            "no TLS with",
        ),
        (
            raised_from(requests.exceptions.ConnectionError("[Errno 111] Connection refused")),
            BmcUnreachable,
            "refused the connection",
        ),
        (
            raised_from(requests.exceptions.ConnectTimeout("timed out")),
            BmcUnreachable,
            "no answer from",
        ),
        (raised_from(requests.exceptions.ReadTimeout("read")), BmcTimeout, "stopped answering"),
        (
            raised_from(requests.exceptions.ConnectionError("Connection aborted.")),
            BmcUnreachable,
            "lost the connection",
        ),
        (TypeError("NoneType"), BmcError, "Redfish client failure"),
    ],
)
def test_classify(exc: BaseException, kind: type[BmcError], text: str) -> None:
    error = sushy_client.classify(exc, TARGET, "power status")
    assert type(error) is kind
    assert text in error.message
    assert error.message.startswith("node1: ")


def test_a_certificate_failure_names_the_option() -> None:
    cause = requests.exceptions.SSLError("certificate verify failed: IP address mismatch")
    error = sushy_client.classify(raised_from(cause), TARGET, "log in")
    assert isinstance(error, BmcTlsError) and not error.retryable
    assert "bmc.verify_tls" in (error.hint or "")


def test_no_error_text_carries_the_password() -> None:
    redact.REDACT.add(PASSWORD)
    echoed = sx.BadRequestError("POST", URL, response(400, f"bad password {PASSWORD}"))
    error = sushy_client.classify(echoed, TARGET, "log in")
    assert PASSWORD not in error.message and "***" in error.message


@pytest.fixture
def sushy_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    redact.REDACT.install()
    return caplog


def test_sushy_records_lose_their_secrets_and_wait_for_debug(
    sushy_logs: pytest.LogCaptureFixture,
) -> None:
    redact.REDACT.add(PASSWORD)
    redact.REDACT.add("tok-abcdef123456")
    logger = logging.getLogger("sushy.connector")
    sushy_logs.set_level(logging.INFO)
    logger.error("Authentication failed for %s", "admin")
    assert sushy_logs.records == []  # racker reports failures itself; sushy's wait for -vv
    sushy_logs.set_level(logging.DEBUG)
    logger.warning(
        "headers: %s; body: %s; auth %s",
        {"X-Auth-Token": "tok-abcdef123456", "Authorization": "Basic YWRtaW46cHc="},
        {"Password": PASSWORD},
        "Authorization: Basic YWRtaW46cHc=",
    )
    [record] = sushy_logs.records
    assert record.levelno == logging.DEBUG
    text = record.getMessage()
    for secret in ("tok-abcdef123456", "YWRtaW46cHc=", PASSWORD):
        assert secret not in text
    assert "'X-Auth-Token': '***'" in text and "Authorization: ***" in text


def test_the_connector_still_has_its_requests_session() -> None:
    """The one private attribute racker uses: if sushy renames it, this says so first."""
    connector = sushy_connector.Connector("https://10.0.0.1", verify=True)
    assert isinstance(connector._session, requests.Session)
    connector.close()


def test_every_request_ends_by_the_deadline() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    port = silent.getsockname()[1]
    adapter = sushy_client._DeadlineAdapter()
    session = requests.Session()
    session.mount("http://", adapter)
    try:
        adapter.deadline = time.monotonic() + 0.3
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.get(f"http://127.0.0.1:{port}/redfish/v1/", timeout=60)
        assert time.monotonic() - started < 1.5
        with pytest.raises(requests.exceptions.ConnectTimeout, match="deadline"):
            session.get(f"http://127.0.0.1:{port}/redfish/v1/", timeout=60)
    finally:
        session.close()
        silent.close()


def test_logout_of_a_dead_bmc_waits_at_most_its_budget() -> None:
    stop = threading.Event()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]

    class Auth:
        def close(self) -> None:
            requests_session.get(f"http://127.0.0.1:{port}/session", timeout=60)

        def reset_session_attrs(self) -> None:
            stop.set()

    class Root:
        _conn = sushy_connector.Connector(f"http://127.0.0.1:{port}")

    adapter = sushy_client._DeadlineAdapter()
    requests_session = requests.Session()
    requests_session.mount("http://", adapter)
    session = sushy_client.RedfishSession(TARGET, Root(), Auth(), adapter, object())
    started = time.monotonic()
    session.close()
    assert time.monotonic() - started < sushy_client.LOGOUT_SECONDS + 1
    assert stop.is_set()  # and sushy's __del__ has nothing left to send
    silent.close()
    requests_session.close()
