"""Redfish BMCs for tests and benchmarks: sushy-tools' emulator (``sushy-emulator --fake``).

One emulator process per BMC, on 127.0.0.1 and a free TCP port (no root, no namespace: nothing
leaves the machine), logging in with Basic auth against an htpasswd file (bcrypt, made with
``htpasswd -nbB``) that holds the rack's OEM credentials. With ``tls=True`` it serves HTTPS with
a self-signed certificate made here by openssl (``RedfishLab.ca``: the certificate itself, a
CA bundle for ``bmc.verify_tls``).

Each BMC's ``--config`` file also calls ``tests/support/redfish_hooks.install`` inside the
emulator: a request log (``calls()``), a slow-BMC switch (``set_delay``), power changes applied
at once, and optionally ETags, sessions or several systems (see that module).

    with RedfishLab(tmp_path) as lab:
        bmc = lab.start()                      # one emulator, user admin / lab.password
        bmc.kill(); bmc.start()                # dies, comes back (same port)

Every process is stopped when the lab exits, whatever the test did.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.simprocess import SimulatorProcess

REPO = Path(__file__).resolve().parents[2]
EMULATOR = str(Path(sys.executable).with_name("sushy-emulator"))
FAKE_SYSTEM_UUID = "27946b59-9e44-4fa7-8e91-f3527a1ef094"  # sushy-tools' default fake system
FAKE_SYSTEM = f"/redfish/v1/Systems/{FAKE_SYSTEM_UUID}"


def available() -> str | None:
    """Why the emulator cannot run here, or None."""
    if not Path(EMULATOR).exists():
        return "sushy-emulator is not installed (pip install sushy-tools; the test extra)"
    if shutil.which("htpasswd") is None:
        return "htpasswd is not installed (Debian package apache2-utils)"
    return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class RedfishBmc(SimulatorProcess):
    """One emulator process and its state directory."""

    name: str
    host: str
    port: int
    user: str
    password: str
    scheme: str
    state: Path
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def spawn(self) -> None:
        """Start the process; ``wait_ready`` waits until it serves."""
        self._spawn("emulator.log")

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                text = self.log()[-2000:]
                self.stop()
                raise RuntimeError(f"Redfish emulator {self.name} did not start: {text}")
            time.sleep(0.05)

    def start(self, timeout: float = 30.0) -> None:
        self.spawn()
        self.wait_ready(timeout)

    def answers(self) -> bool:
        try:
            self.get("/redfish/v1/", auth=False, timeout=1)
        except (OSError, urllib.error.URLError):
            return False
        return True

    def calls(self) -> list[str]:
        """What the BMC was asked, after authentication: ``METHOD PATH [JSON]``."""
        return self._lines("requests.log")

    def sessions(self) -> int:
        """Open sessions (only with ``sessions=True``)."""
        return int((self.state / "sessions").read_text() or 0)

    def log(self) -> str:
        try:
            return (self.state / "emulator.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def get(self, path: str, auth: bool = True, timeout: float = 5) -> Any:
        """GET ``path`` as JSON, past racker: what the BMC itself reports."""
        request = urllib.request.Request(self.url + path)  # noqa: S310 - http(s) only
        if auth:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        context = ssl._create_unverified_context() if self.scheme == "https" else None  # noqa: S323
        with urllib.request.urlopen(request, timeout=timeout, context=context) as reply:  # noqa: S310
            return json.loads(reply.read())

    def system(self, path: str = FAKE_SYSTEM) -> dict[str, Any]:
        data: dict[str, Any] = self.get(path)
        return data


class RedfishLab:
    """Makes emulated Redfish BMCs under ``root`` and stops every one of them on exit."""

    def __init__(self, root: Path, user: str = "admin", tls: bool = False) -> None:
        self.root = root
        self.user = user
        self.password = "pw-" + secrets.token_hex(6)
        self.tls = tls
        self.bmcs: list[RedfishBmc] = []
        root.mkdir(parents=True, exist_ok=True)
        self.htpasswd = root / "htpasswd"
        self.write_users(self.password)
        self.ca = root / "bmc-cert.pem"
        self.key = root / "bmc-key.pem"
        if tls:
            make_certificate(self.ca, self.key)

    def __enter__(self) -> RedfishLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def write_users(self, password: str) -> None:
        done = subprocess.run(
            ["htpasswd", "-nbB", self.user, password],
            capture_output=True,
            text=True,
            check=True,
        )
        self.htpasswd.write_text(done.stdout)

    def add(
        self,
        *,
        sessions: bool = False,
        require_etag: bool = False,
        power_delay: int = 0,
        systems: list[dict[str, Any]] | None = None,
        port: int | None = None,
    ) -> RedfishBmc:
        """Prepare (not start) one emulator."""
        name = f"redfish{len(self.bmcs)}"
        state = self.root / name
        state.mkdir()
        lines = [
            f"SUSHY_EMULATOR_AUTH_FILE = {str(self.htpasswd)!r}",
            # Its own state (else every emulator shares $TMPDIR/sushy-emulator): kept across a
            # restart, as a BMC keeps it.
            f"SUSHY_EMULATOR_STATE_DIR = {str(state / 'db')!r}",
            "import sys",
            f"sys.path.insert(0, {str(REPO)!r})",
            "from tests.support.redfish_hooks import install",
            f"install({str(state)!r}, {str(self.htpasswd)!r}, power_delay={power_delay},"
            f" sessions={sessions}, require_etag={require_etag})",
        ]
        if systems is not None:
            lines.insert(0, f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}")
        config = state / "emulator.conf"
        config.write_text("\n".join(lines) + "\n")
        port = port or free_port()
        argv = [EMULATOR, "--fake", "-i", "127.0.0.1", "-p", str(port), "--config", str(config)]
        if self.tls:
            argv += ["--ssl-certificate", str(self.ca), "--ssl-key", str(self.key)]
        bmc = RedfishBmc(
            name,
            "127.0.0.1",
            port,
            self.user,
            self.password,
            "https" if self.tls else "http",
            state,
            argv,
        )
        self.bmcs.append(bmc)
        return bmc

    def start(self, **kwargs: Any) -> RedfishBmc:
        bmc = self.add(**kwargs)
        bmc.start()
        return bmc

    def start_many(self, count: int, timeout: float = 120.0, **kwargs: Any) -> list[RedfishBmc]:
        """Start ``count`` emulators at once (each takes ~1 s of CPU to start)."""
        bmcs = [self.add(**kwargs) for _ in range(count)]
        for bmc in bmcs:
            bmc.spawn()
        deadline = time.monotonic() + timeout
        for bmc in bmcs:
            bmc.wait_ready(max(deadline - time.monotonic(), 0.1))
        return bmcs

    def stop_all(self) -> None:
        for bmc in self.bmcs:
            bmc.stop()


def make_certificate(cert: Path, key: Path, host: str = "127.0.0.1") -> None:
    """A self-signed certificate for ``host`` (an IP address), as a BMC ships one."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=racker-test-bmc",
            "-addext",
            f"subjectAltName=IP:{host}",
        ],
        check=True,
        capture_output=True,
    )
