"""Simulated BMCs for tests and benchmarks: OpenIPMI's ``ipmi_sim`` and pyghmi's fake BMC.

Each BMC listens on its own loopback address (127.0.6.10, .11, ... by default) at UDP 623, so
it needs root (a privileged port) but no namespace, and sends nothing off the machine.

``ipmi_sim`` calls a chassis-control program for every power/boot request; ours is a small
``/bin/sh`` script (fast: 40 BMCs are polled at once in the benchmark) that keeps ``power``
and ``boot`` in the BMC's state directory and appends every call to ``calls.log`` ("get power",
"set power 1", "set boot pxe", "set reset 1"). A ``delay`` file there makes every call sleep
that many seconds: a slow BMC (ipmi_sim is single-threaded, so the whole BMC stalls).

ipmi_sim does not keep the boot flags' "valid" bit: after ``bootdev pxe`` a read-back says
"default". Assert on ``calls()`` instead.

    with BmcSim(tmp_path) as sim:
        bmcs = sim.start(3)          # three ipmi_sim BMCs, user admin / password from sim
        bmcs[0].kill(); bmcs[0].restart()

The password is handed to the pyghmi fake through its environment, never argv.
"""

from __future__ import annotations

import ipaddress
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import racker
from tests.support.simprocess import SimulatorProcess

# racker.sim.rack.DATA, without importing racker.sim (it pulls in http.client, which bench/http.py
# shadows for the benchmark scripts that use this module).
SIM_DATA = Path(racker.__file__).parent / "data" / "sim"

IPMI_SIM = "ipmi_sim"
DEFAULT_FIRST = "127.0.6.10"

CHASSIS_SCRIPT = """#!/bin/sh
# chassis_control for ipmi_sim: $1 is this BMC's state directory.
dir=$1; shift
echo "$*" >> "$dir/calls.log"
[ -s "$dir/delay" ] && sleep "$(cat "$dir/delay")"
op=$1; shift
case $op in
get) for k in "$@"; do case $k in
  power) printf 'power:%s\\n' "$(cat "$dir/power" 2>/dev/null || echo 0)";;
  boot) printf 'boot:%s\\n' "$(cat "$dir/boot" 2>/dev/null || echo default)";;
  esac; done;;
set) while [ $# -ge 2 ]; do printf '%s' "$2" > "$dir/$1"; shift 2; done;;
esac
exit 0
"""

# The ipmi_sim configuration `racker sim` writes (racker/data/sim): one copy of it, here
# formatted with this module's fake chassis program instead of the sim's QEMU supervisor.
LAN_CONF = (SIM_DATA / "lan.conf").read_text()
CMDS_CONF = (SIM_DATA / "cmds.conf").read_text()


def udp_bound(host: str, port: int) -> bool:
    """True if something listens on host:port (IPv4 UDP), read from /proc/net/udp."""
    want = f"{int(ipaddress.IPv4Address(host)).to_bytes(4, 'big')[::-1].hex().upper()}:{port:04X}"
    wildcard = f"00000000:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] in (want, wildcard) for line in lines if line.strip())


@dataclass
class SimBmc(SimulatorProcess):
    """One simulated BMC (ipmi_sim or pyghmi's fake) and its state directory."""

    name: str
    host: str
    port: int
    user: str
    password: str
    state: Path
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        self._spawn("sim.log")
        deadline = time.monotonic() + timeout
        while not udp_bound(self.host, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                text = (self.state / "sim.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"BMC simulator {self.name} did not start: {text}")
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()

    def calls(self) -> list[str]:
        return self._lines("calls.log")

    def set_power(self, on: bool) -> None:
        (self.state / "power").write_text("1" if on else "0")

    @property
    def power(self) -> str:
        try:
            return (self.state / "power").read_text().strip() or "0"
        except FileNotFoundError:
            return "0"


class BmcSim:
    """Starts simulated BMCs under ``root`` and stops every one of them on exit."""

    def __init__(
        self, root: Path, first: str = DEFAULT_FIRST, user: str = "admin", port: int = 623
    ) -> None:
        self.root = root
        self.user = user
        self.password = "pw-" + secrets.token_hex(6)
        self.port = port
        self._next = ipaddress.IPv4Address(first)
        self.bmcs: list[SimBmc] = []
        self.script = root / "chassis.sh"
        root.mkdir(parents=True, exist_ok=True)
        self.script.write_text(CHASSIS_SCRIPT)
        self.script.chmod(0o755)

    def __enter__(self) -> BmcSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def _address(self) -> str:
        while True:
            host = str(self._next)
            self._next += 1
            if not udp_bound(host, self.port):
                return host

    def add_ipmi_sim(self, password: str | None = None, sol_tcp: str | None = None) -> SimBmc:
        """Prepare (not start) one ipmi_sim BMC; ``password`` overrides the shared one.

        ``sol_tcp`` ("HOST:PORT") gives it a serial port for serial-over-LAN: ipmi_sim
        connects to that TCP server (as to a QEMU serial port) and keeps retrying."""
        host = self._address()
        name = f"bmc{len(self.bmcs)}"
        state = self.root / name
        state.mkdir()
        (state / "lan.conf").write_text(
            LAN_CONF.format(
                name=name,
                host=host,
                port=self.port,
                guid=secrets.token_hex(16),
                program=self.script,
                node_dir=state,
                user=self.user,
                password=password or self.password,
            )
        )
        if sol_tcp is not None:
            with (state / "lan.conf").open("a") as conf:
                conf.write(f'sol "tcp:{sol_tcp}" 115200\n')
        (state / "cmds.conf").write_text(CMDS_CONF)
        argv = [
            IPMI_SIM,
            "-c",
            str(state / "lan.conf"),
            "-f",
            str(state / "cmds.conf"),
            "-s",
            str(state / "persist"),
            "-n",
        ]
        bmc = SimBmc(name, host, self.port, self.user, password or self.password, state, argv)
        self.bmcs.append(bmc)
        return bmc

    def add_pyghmi_bmc(self) -> SimBmc:
        """Prepare pyghmi's fake BMC (``tests/support/pyghmi_bmc.py``) in its own process."""
        host = self._address()
        name = f"pyghmi{len(self.bmcs)}"
        state = self.root / name
        state.mkdir()
        argv = [
            sys.executable,
            "-m",
            "tests.support.pyghmi_bmc",
            "--address",
            host,
            "--port",
            str(self.port),
            "--user",
            self.user,
            "--state",
            str(state),
        ]
        env = {"BMC_PASSWORD": self.password, "PYTHONPATH": str(Path(__file__).parents[2])}
        bmc = SimBmc(name, host, self.port, self.user, self.password, state, argv, env)
        self.bmcs.append(bmc)
        return bmc

    def start(self, count: int) -> list[SimBmc]:
        """Start ``count`` ipmi_sim BMCs."""
        started = [self.add_ipmi_sim() for _ in range(count)]
        for bmc in started:
            bmc.start()
        return started

    def stop_all(self) -> None:
        for bmc in self.bmcs:
            bmc.stop()
