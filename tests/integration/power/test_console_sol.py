"""racker console: a real serial-over-LAN session through ipmi_sim, on a pseudo-terminal.

ipmi_sim's SOL port is a TCP connection to a "serial line" played by this test: it answers
"ping" with a line only the serial side can produce, so seeing it proves the bytes went
keyboard -> racker console -> ipmitool -> BMC -> serial port and back. "~." leaves.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.support.bmcsim import BmcSim

from .test_cli_ipmi import rack_args

pytestmark = pytest.mark.root


def serial_line(server: socket.socket, stop: threading.Event) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(0.2)
            data = b""
            while not stop.is_set():
                try:
                    chunk = conn.recv(1024)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                data += chunk
                if b"ping" in data:
                    conn.sendall(b"\r\nPONG-FROM-THE-SERIAL-PORT\r\n")
                    data = b""


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} in {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                raise AssertionError(f"no {marker!r} in {bytes(seen)!r}") from None


def test_console_reaches_the_serial_port_and_leaves_on_tilde_dot(
    sim: BmcSim, tmp_path: Path
) -> None:
    if shutil.which("ipmitool") is None:
        pytest.skip("ipmitool is not installed")
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serial_line, args=(server, stop), daemon=True)
    thread.start()
    bmc = sim.add_ipmi_sim(sol_tcp=f"127.0.0.1:{server.getsockname()[1]}")
    bmc.start()
    args = rack_args(tmp_path, sim, {"2": bmc.host})
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "racker"), *args, "console", "2"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
    )
    os.close(slave)
    seen = bytearray()
    try:
        read_until(master, b"SOL Session operational", seen)
        # ipmitool is running now: no process's argv holds the password.
        secret = sim.password.encode()
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                assert secret not in cmdline.read_bytes(), f"password in {cmdline}"
            except OSError:
                continue
        os.write(master, b"ping\r")
        read_until(master, b"PONG-FROM-THE-SERIAL-PORT", seen)
        os.write(master, b"\r~.")
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop.set()
        thread.join(5)
        server.close()
        os.close(master)
    text = seen.decode(errors="replace")
    assert "serial console via 127.0.6." in text
    assert sim.password not in text
