"""Loaded *inside* sushy-tools' emulator, from its ``--config`` file (tests/support/redfish.py).

The emulator reads its configuration with Flask's ``from_pyfile``: the file is Python, run in
the emulator's process before it serves. That file calls ``install`` here, which adds to the
unmodified emulator what a test needs to see and what real BMCs do but ``--fake`` does not:

- ``requests.log``: one line per request after authentication, written as it arrives
  (``METHOD PATH BODY``, password fields masked), so a test asserts on what the BMC was
  asked, as with ipmi_sim's calls.log;
- ``delay``: a file of seconds every request sleeps first (a slow BMC; Werkzeug serves each
  request in its own thread, so the BMC stays slow, not stuck);
- ``power_delay``: the fake driver applies a power change 1-11 s after the request (at the next
  read), as hardware does; tests that are not about that pin it (0: at the next read);
- ``require_etag``: the system resource gets an ``ETag`` and a PATCH of it without a matching
  ``If-Match`` is refused (428, 412), as iDRAC and iLO do;
- ``sessions``: a SessionService (POST ``/redfish/v1/SessionService/Sessions`` for an
  ``X-Auth-Token``, DELETE to log out) in front of the emulator's Basic auth, checked against the
  same htpasswd file; ``sessions`` in the state directory holds the number of open sessions.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
Wsgi = Callable[[Environ, StartResponse], Iterable[bytes]]

SESSIONS_PATH = "/redfish/v1/SessionService/Sessions"


def install(
    state: str,
    auth_file: str,
    *,
    power_delay: int = 0,
    sessions: bool = False,
    require_etag: bool = False,
) -> None:
    from sushy_tools.emulator import main
    from sushy_tools.emulator.resources.systems import fakedriver

    if power_delay >= 0:
        fakedriver.random = _FixedDelay(power_delay)  # type: ignore[assignment]
    app = main.app
    app.logger.setLevel(logging.INFO)
    wsgi: Wsgi = _Hooks(app.wsgi_app, Path(state), require_etag)
    if sessions:
        # A subclass of the emulator's own auth middleware, so its configure() keeps this one
        # instead of wrapping another around it.
        wsgi = _session_auth_class(main.RedfishAuthMiddleware)(wsgi, auth_file, Path(state))
    app.wsgi_app = wsgi  # type: ignore[method-assign]


class _FixedDelay:
    """Stands in for the ``random`` module in sushy-tools' fake driver."""

    def __init__(self, seconds: int) -> None:
        self.seconds = seconds

    def randint(self, _low: int, _high: int) -> int:
        return self.seconds


class _Hooks:
    def __init__(self, app: Wsgi, state: Path, require_etag: bool) -> None:
        self.app = app
        self.state = state
        self.require_etag = require_etag
        self.lock = threading.Lock()

    def __call__(self, env: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method, path = env["REQUEST_METHOD"], env.get("PATH_INFO", "")
        body = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
        env["wsgi.input"] = io.BytesIO(body)
        self._record(method, path, body)  # before the delay: a test sees the request arrive
        delay = self._delay()
        if delay:
            time.sleep(delay)
        system = path.rstrip("/").count("/") == 4 and path.startswith("/redfish/v1/Systems/")
        if self.require_etag and system and method == "PATCH":
            current = self._etag(env, path)
            given = env.get("HTTP_IF_MATCH")
            if given is None or given.removeprefix("W/") != current:
                status = "428 Precondition Required" if given is None else "412 Precondition Failed"
                return _json(start_response, status, {"error": {"message": f"If-Match {given}"}})
        if self.require_etag and system and method == "GET":
            status, headers, chunks = _call(self.app, env)
            headers.append(("ETag", _digest(chunks)))
            start_response(status, headers)
            return chunks
        return self.app(env, start_response)

    def _delay(self) -> float:
        try:
            return float((self.state / "delay").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0.0

    def _record(self, method: str, path: str, body: bytes) -> None:
        text = body.decode(errors="replace")
        try:
            data = json.loads(text) if text else None
        except ValueError:
            data = text
        if isinstance(data, dict) and "Password" in data:
            data = {**data, "Password": "***"}
        line = f"{method} {path}" + (f" {json.dumps(data, sort_keys=True)}" if data else "")
        with self.lock, (self.state / "requests.log").open("a") as log:
            log.write(line + "\n")

    def _etag(self, env: Environ, path: str) -> str:
        probe = {**env, "REQUEST_METHOD": "GET", "wsgi.input": io.BytesIO(), "CONTENT_LENGTH": "0"}
        _status, _headers, chunks = _call(self.app, probe)
        return _digest(chunks)


def _call(app: Wsgi, env: Environ) -> tuple[str, list[tuple[str, str]], list[bytes]]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], *_: Any) -> None:
        seen["status"], seen["headers"] = status, list(headers)

    chunks = list(app(env, start_response))
    return seen["status"], seen["headers"], chunks


def _digest(chunks: list[bytes]) -> str:
    return '"' + hashlib.sha1(b"".join(chunks)).hexdigest()[:16] + '"'  # noqa: S324


def _json(start_response: StartResponse, status: str, data: object) -> list[bytes]:
    body = json.dumps(data).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]


def _session_auth_class(base: type) -> type:
    from sushy_tools import error
    from sushy_tools.emulator import auth_basic

    class SessionAuth(base):  # type: ignore[misc, valid-type]
        def __init__(self, app: Wsgi, auth_file: str, state: Path) -> None:
            super().__init__(app, auth_file)
            self.state = state
            self.tokens: dict[str, str] = {}  # token -> session id
            self.lock = threading.Lock()
            self._count()

        def __call__(self, env: Environ, start_response: StartResponse) -> Iterable[bytes]:
            method, path = env["REQUEST_METHOD"], env.get("PATH_INFO", "").rstrip("/")
            token = env.get("HTTP_X_AUTH_TOKEN")
            if method == "POST" and path == SESSIONS_PATH:
                return self._login(env, start_response)
            if token is not None:
                with self.lock:
                    session = self.tokens.get(token)
                if session is None:
                    return _json(start_response, "401 Unauthorized", {"error": {"message": "?"}})
                if method == "DELETE" and path == f"{SESSIONS_PATH}/{session}":
                    with self.lock:
                        self.tokens.pop(token, None)
                    self._count()
                    start_response("204 No Content", [])
                    return []
                env.pop("HTTP_AUTHORIZATION", None)
                return self.app(env, start_response)
            return super().__call__(env, start_response)

        def _login(self, env: Environ, start_response: StartResponse) -> Iterable[bytes]:
            body = env["wsgi.input"].read(int(env.get("CONTENT_LENGTH") or 0))
            try:
                data = json.loads(body)
                auth_basic.authenticate(self.auth_file, data["UserName"], data["Password"].encode())
            except (ValueError, KeyError, TypeError, error.FishyError):
                return _json(start_response, "401 Unauthorized", {"error": {"message": "no"}})
            token, session = secrets.token_urlsafe(24), secrets.token_hex(4)
            with self.lock:
                self.tokens[token] = session
            self._count()
            body = json.dumps({"@odata.id": f"{SESSIONS_PATH}/{session}", "Id": session}).encode()
            start_response(
                "201 Created",
                [
                    ("Content-Type", "application/json"),
                    ("X-Auth-Token", token),
                    ("Location", f"{SESSIONS_PATH}/{session}"),
                ],
            )
            return [body]

        def _count(self) -> None:
            with self.lock:
                (self.state / "sessions").write_text(str(len(self.tokens)))

    return SessionAuth
