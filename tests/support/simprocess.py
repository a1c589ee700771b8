"""What the simulated BMCs of tests and benchmarks share: one process and its state directory.

``bmcsim.SimBmc`` (ipmi_sim, pyghmi's fake) and ``redfish.RedfishBmc`` (sushy-emulator) each
run one process in a session of its own, log to a file in their state directory, and read a
``delay`` file there that makes the BMC slow. How they start and when they are ready differs;
stopping, killing, freezing and the delay switch do not, and live here.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class SimulatorProcess:
    """A mixin for dataclasses with ``state``, ``argv``, ``env`` and ``proc`` fields."""

    state: Path
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None

    def _spawn(self, log_name: str) -> None:
        log = (self.state / log_name).open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGCONT)  # a frozen BMC cannot act on SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """Die at once (SIGKILL), as a BMC that loses power mid-request."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None

    def freeze(self) -> None:
        """Stop answering without closing anything (SIGSTOP); ``thaw`` resumes."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def set_delay(self, seconds: float) -> None:
        (self.state / "delay").write_text(f"{seconds:g}" if seconds else "")

    def _lines(self, name: str) -> list[str]:
        try:
            return (self.state / name).read_text().splitlines()
        except FileNotFoundError:
            return []
