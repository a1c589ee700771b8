"""A simulated rack: N nodes, each a process in its own network namespace on a shared bridge.

The management node is a namespace ``<tag>srv`` with a bridge ``br0`` (10.77.0.1/22); every
node is a namespace ``<tag>n<i>`` whose ``eth0`` (the node's primary MAC) hangs off that bridge.
Nothing leaves the namespaces.

racker runs as a subprocess *inside* the server namespace (``SimRack.racker``): the real
``racker bootstrap``/``status`` command line, with the fake power driver replaced by
``SimRackDriver``, a fake driver whose power-on (re)starts the node's process with the boot
device the BMC had at that moment. The node process (``python -m tests.support.simnode``,
simnode.py) acts like firmware plus installer with real clients: ``busybox udhcpc`` with PXE
options → ``busybox tftp`` of the loader → ``udhcpc`` as iPXE → ``curl`` ``/boot.ipxe`` →
``/ipxe`` → kernel and initrd → ``/ignition`` → phone home ``installed`` → "reboot" →
``udhcpc`` as an installed OS (no PXE options). Faults per node (``behaviour.json``): ``bmc-dead``,
``pxe-first`` (PXE boots before the disk even when installed),
``ignore-bootdev`` (boots its old disk whatever racker sets), ``fail-install``, ``loss`` (5 %
of frames dropped on the node's link, both ways).

State shared between racker's process and node processes lives in the sim directory: node pid
files (so a resumed racker can still power-cycle nodes a killed one started), disk markers,
per-node logs.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.netns import create_namespace, delete_namespace, sh, unique

REPO = Path(__file__).resolve().parents[2]
SERVER_IP = "10.77.0.1"
PREFIX = 22
VERSION = "9999.0.0"
PXE_VENDOR = "PXEClient:Arch:00000:UNDI:002001"
MGMT_MAC = "52:54:00:77:ff:fe"
LAUNCHER = "launcher.sock"


def node_mac(i: int) -> str:
    return f"52:54:00:77:{i // 256:02x}:{i % 256:02x}"


def bmc_mac(i: int) -> str:
    return f"52:54:00:78:{i // 256:02x}:{i % 256:02x}"


RACKER_YAML = """\
interface: br0
state_dir: {dir}/state
oem_dir: {dir}/oem
network:
  subnet: 10.77.0.0/{prefix}
  nodes: 10.77.0.10-10.77.1.250
  bmcs: 10.77.2.10-10.77.2.250
bmc:
  driver: fake
  timeout: 5
http:
  port: 8080
"""


@dataclass
class SimRack:
    """Namespaces, OEM files, config and assets for ``count`` nodes; ``close`` removes all."""

    directory: Path
    count: int
    behaviour: dict[int, list[str]] = field(default_factory=dict)  # node index (1-based) -> flags
    node_types: dict[int, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: unique("sr"))
    namespaces: list[str] = field(default_factory=list)

    @property
    def server_ns(self) -> str:
        return f"{self.tag}srv"

    def node_ns(self, i: int) -> str:
        return f"{self.tag}n{i}"

    @property
    def macs(self) -> list[str]:
        return [node_mac(i) for i in range(1, self.count + 1)]

    def __enter__(self) -> SimRack:
        try:
            self._files()
            self._network()
            self._start_launcher()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _files(self) -> None:
        d = self.directory
        (d / "oem").mkdir(parents=True, exist_ok=True)
        (d / "nodes").mkdir(exist_ok=True)
        rows = ["Primary MAC address, BMC MAC address, Node Type, Comments"]
        # the management node: racker's own machine (its PXE NIC is the bridge)
        rows.append(f"{MGMT_MAC}, 52:54:00:78:ff:fe, management, racker")
        for i in range(1, self.count + 1):
            rows.append(f"{node_mac(i)}, {bmc_mac(i)}, {self.node_types.get(i, 'sim')}, node {i}")
        (d / "oem" / "nodes.csv").write_text("\n".join(rows) + "\n")
        for name, value in (("ipmi_user", "admin"), ("ipmi_password", "sim-password")):
            (d / "oem" / name).write_text(value + "\n")
            os.chmod(d / "oem" / name, 0o600)
        (d / "racker.yaml").write_text(RACKER_YAML.format(dir=d, prefix=PREFIX))
        flatcar = d / "state" / "assets" / "flatcar"
        (flatcar / VERSION).mkdir(parents=True, exist_ok=True)
        for name in ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"):
            (flatcar / VERSION / name).write_bytes(b"\0" * 65536)
        with contextlib.suppress(FileExistsError):
            (flatcar / "current-stable").symlink_to(VERSION)
        behaviour = {node_mac(i): flags for i, flags in self.behaviour.items()}
        nodes = {node_mac(i): self.node_ns(i) for i in range(1, self.count + 1)}
        (d / "sim.json").write_text(json.dumps({"behaviour": behaviour, "nodes": nodes}))

    def _network(self) -> None:
        srv = self.server_ns
        create_namespace(srv)
        self.namespaces.append(srv)
        sh("ip", "-n", srv, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", srv, "link", "set", "br0", "address", MGMT_MAC)
        sh("ip", "-n", srv, "addr", "add", f"{SERVER_IP}/{PREFIX}", "dev", "br0")
        sh("ip", "-n", srv, "link", "set", "br0", "up")
        for i in range(1, self.count + 1):
            ns = self.node_ns(i)
            create_namespace(ns)
            self.namespaces.append(ns)
            host_if = f"{self.tag}v{i}"
            sh("ip", "link", "add", host_if, "type", "veth", "peer", "name", f"{self.tag}p{i}")
            sh(
                "ip",
                "link",
                "set",
                f"{self.tag}p{i}",
                "netns",
                ns,
                "name",
                "eth0",
                "address",
                node_mac(i),
            )
            sh("ip", "link", "set", host_if, "netns", srv)
            sh("ip", "-n", srv, "link", "set", host_if, "master", "br0", "up")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            if "loss" in self.behaviour.get(i, []):
                # 5 % of frames dropped in both directions. netem is not in every kernel; an
                # nftables ingress rule on each end of the link does the same.
                _drop_five_percent(ns, "eth0")
                _drop_five_percent(srv, host_if)

    def racker(
        self, args: Sequence[str], path_prepend: Path | None = None, **kwargs: Any
    ) -> subprocess.Popen[str]:
        """``racker ARGS`` in the server namespace, with the simulated BMCs."""
        env = {**os.environ, "PYTHONPATH": f"{REPO}:{REPO / 'src'}"}
        if path_prepend is not None:
            env["PATH"] = f"{path_prepend}:{env.get('PATH', '')}"
        return subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.server_ns,
                sys.executable,
                "-m",
                "tests.support.simrack",
                "racker",
                str(self.directory),
                "--config",
                str(self.directory / "racker.yaml"),
                *args,
            ],
            cwd=REPO,
            env=env,
            text=True,
            start_new_session=True,  # so a test can SIGKILL racker's whole process group
            stdout=kwargs.pop("stdout", subprocess.PIPE),
            stderr=kwargs.pop("stderr", subprocess.PIPE),
            **kwargs,
        )

    def node_states(self) -> dict[str, dict[str, Any]]:
        from racker.store import Store

        path = self.directory / "state"
        if not (path / "racker.db").exists():
            return {}
        with Store.open(path) as store:
            return {
                mac: {"state": s.state, "attempt": s.attempt, "reason": s.reason}
                for mac, s in store.node_states().items()
            }

    def dropped(self) -> int:
        """Frames the simulated packet loss dropped so far (all nodes, both directions)."""
        total = 0
        for ns in self.namespaces:
            listing = sh("ip", "netns", "exec", ns, "nft", "list", "ruleset", check=False).stdout
            total += sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))
        return total

    def _start_launcher(self) -> None:
        path = self.directory / LAUNCHER
        path.unlink(missing_ok=True)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        nodes = {node_mac(i): self.node_ns(i) for i in range(1, self.count + 1)}
        self._launcher = threading.Thread(
            target=_launcher_loop, args=(self.directory, self._sock, nodes), daemon=True
        )
        self._launcher.start()

    def close(self) -> None:
        launcher = getattr(self, "_launcher", None)
        if launcher is not None:
            _tell_launcher(self.directory, {"op": "quit"})
            launcher.join(10)
            self._sock.close()
            self._launcher = None
        for pidfile in (self.directory / "nodes").glob("*.pid"):
            _kill_pidfile(pidfile)
        for ns in reversed(self.namespaces):
            delete_namespace(ns)
        self.namespaces.clear()


def _drop_five_percent(ns: str, device: str) -> None:
    table = f"loss_{device}".replace("-", "_")
    rules = (
        f"table netdev {table} {{\n"
        f"  chain ingress {{ type filter hook ingress device {device} priority 0; }}\n"
        f"}}\n"
        f"add rule netdev {table} ingress numgen random mod 100 < 5 counter drop\n"
    )
    subprocess.run(
        ["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules, text=True, check=True
    )


def _kill_pidfile(pidfile: Path) -> None:
    with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        os.killpg(int(pidfile.read_text().strip()), signal.SIGKILL)
    pidfile.unlink(missing_ok=True)


# -- the launcher: the "hardware" that starts node processes, outside racker's process ----------
# (so racker's own CPU and latency figures hold no fork of a node, and nodes outlive a killed
# racker, like real machines do)


def _tell_launcher(sim_dir: Path, message: dict[str, str]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(json.dumps(message).encode(), str(sim_dir / LAUNCHER))


def launch_node(
    sim_dir: Path, namespaces: dict[str, str], mac: str, device: str
) -> subprocess.Popen[bytes]:
    pidfile = sim_dir / "nodes" / f"{mac}.pid"
    _kill_pidfile(pidfile)
    with open(sim_dir / "nodes" / f"{mac}.log", "a") as log:
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                namespaces[mac],
                sys.executable,
                "-m",
                "tests.support.simnode",
                str(sim_dir),
                mac,
                device,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=REPO,
        )
    pidfile.write_text(f"{proc.pid}\n")
    return proc


def _launcher_loop(sim_dir: Path, sock: socket.socket, namespaces: dict[str, str]) -> None:
    children: list[subprocess.Popen[bytes]] = []
    while True:
        message = json.loads(sock.recv(4096))
        if message["op"] == "quit":
            for pidfile in (sim_dir / "nodes").glob("*.pid"):
                _kill_pidfile(pidfile)
            for child in children:
                child.wait(10)
            return
        if message["op"] == "stop":
            _kill_pidfile(sim_dir / "nodes" / f"{message['mac']}.pid")
        elif message["op"] == "start":
            children.append(launch_node(sim_dir, namespaces, message["mac"], message["device"]))
        children = [c for c in children if c.poll() is None]


# -- inside racker's process: the simulated BMCs -------------------------------------------------


def _sim_driver_class() -> Any:
    from racker.power.base import BmcTarget, BootDevice, PowerAction
    from racker.power.fake import FakeBmc, FakeDriver

    class SimRackDriver(FakeDriver):
        """The fake driver, where powering a node on starts its simulated firmware."""

        def __init__(self, sim_dir: Path, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.sim_dir = sim_dir
            sim = json.loads((sim_dir / "sim.json").read_text())
            self.behaviour: dict[str, list[str]] = sim["behaviour"]
            self.namespaces: dict[str, str] = sim["nodes"]
            self._hosts: dict[str, str] = {}

        def bmc(self, host: str, port: int = 623) -> FakeBmc:
            found = super().bmc(host, port)
            mac = self._hosts.get(host)
            if mac and "bmc-dead" in self.behaviour.get(mac, []):
                found.reachable = False
            return found

        async def _answer(self, target: BmcTarget, op: str, arg: str = "") -> FakeBmc:
            if target.mac:
                self._hosts[target.host] = target.mac
            return await super()._answer(target, op, arg)

        async def _do_power(self, target: BmcTarget, action: PowerAction) -> None:
            boot = self.bmc(target.host, target.port).boot
            await super()._do_power(target, action)
            mac = target.mac or ""
            if action is PowerAction.OFF or action is PowerAction.SOFT:
                _tell_launcher(self.sim_dir, {"op": "stop", "mac": mac})
            else:
                device = boot.device if boot.device is not BootDevice.DEFAULT else "default"
                self._start_node(mac, str(device))

        def _start_node(self, mac: str, device: str) -> None:
            _tell_launcher(self.sim_dir, {"op": "start", "mac": mac, "device": device})

    return SimRackDriver


def racker_main(sim_dir: Path, args: list[str]) -> None:
    """The real racker CLI with the fake driver swapped for the simulated rack's."""
    from racker import cli
    from racker.power import drivers

    driver_class = _sim_driver_class()

    def record_own_cpu() -> None:
        # RUSAGE_SELF: racker's own CPU, without any child process (for bench/bootstrap.py)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        (sim_dir / "racker-rusage.json").write_text(
            json.dumps({"user": usage.ru_utime, "system": usage.ru_stime})
        )

    atexit.register(record_own_cpu)

    def sim_factory(config: Any, publish: Any, state_dir: Path | None) -> Any:
        state_file = state_dir / drivers.FAKE_STATE_FILE if state_dir else None
        return driver_class(sim_dir, timeout=config.timeout, publish=publish, state_file=state_file)

    drivers.DRIVERS["fake"] = sim_factory
    cli.cli.main(args=args, prog_name="racker")


# -- inside a node's namespace: firmware plus installer ------------------------------------------


def main(argv: list[str]) -> None:
    if argv[:1] == ["racker"]:
        racker_main(Path(argv[1]), argv[2:])
    else:
        raise SystemExit("usage: simrack racker SIM_DIR ARGS...")


if __name__ == "__main__":
    main(sys.argv[1:])
