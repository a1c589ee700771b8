"""``racker sim up|down|status``: a rack of QEMU VMs behind ipmi_sim BMCs (layer 5, root).

``sim_up`` builds what ``racker.sim.spec`` describes: the two namespaces, bridge and taps, the
generated OEM directory, racker.yaml and asset mirror (the sim guest under the Flatcar file
names, so racker's real profiles and Ignition are used unchanged), and one running ``ipmi_sim``
per node. VMs start only when racker powers a node on through its BMC. ``sim_down`` removes
all of it: every process in the two namespaces (QEMU, supervisors, BMCs), the namespaces (and
with them the taps and bridge), and the sim directory. It is safe to run twice, and after a
half-finished ``sim_up``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from racker.errors import EnvironmentProblem, RackerError
from racker.mirror.flatcar import PXE_INITRD, PXE_KERNEL
from racker.rack.oem import Secret, write_credentials, write_pxe_interface
from racker.sim.guest import IPMI_SIM, IPXE_DIR, OVMF_VARS, GuestFiles, check_host, guest_files
from racker.sim.spec import (
    BMC_PORT,
    BRIDGE,
    DEFAULT_ROOT,
    PXE_IFACE,
    SIM_VERSION,
    UPLINK,
    SimNode,
    SimSpec,
    uefi_http,
)
from racker.sim.vm import SERIAL_LOG, VmConfig, installed

DATA = Path(__file__).resolve().parents[1] / "data" / "sim"
SPEC_FILE = "sim.json"
BMC_USER = "admin"
DISK_MIB = 64
# BMC processes started by this process: they outlive sim_up on purpose (sim_down, possibly
# from another process, ends them). Kept referenced so that this process reaps them when they
# end and Python does not warn about a still-running child it forgot.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SimError(RackerError):
    """The simulator could not be set up or inspected."""

    exit_code = 4


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SimError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


def load_spec(name: str, root: Path = DEFAULT_ROOT) -> SimSpec | None:
    try:
        return SimSpec.from_json((root / name / SPEC_FILE).read_text())
    except FileNotFoundError:
        return None


# -- up ---------------------------------------------------------------------------------------


def sim_up(spec: SimSpec, python: str = sys.executable, guest_cache: Path | None = None) -> SimSpec:
    """Create the sim; on any failure, remove what was created and raise. ``guest_cache``:
    where the sim guest is cached (default: ``racker.sim.guest.cache_dir()``)."""
    check_host()
    guest = guest_files(guest_cache)
    if spec.root.exists() or {spec.mgmt_ns, spec.rack_ns} & namespaces():
        raise SimError(
            f"sim {spec.name} is already up (or left over)",
            f"run 'racker sim down --name {spec.name}' first",
        )
    spec.root.mkdir(parents=True, mode=0o700)
    (spec.root / SPEC_FILE).write_text(spec.to_json())
    try:
        _network(spec)
        password = Secret("sim-" + secrets.token_hex(6))  # IPMI 1.5 allows 16 bytes
        _racker_files(spec, guest, password)
        for node in spec.nodes:
            _node(spec, node, guest, python, password)
    except BaseException:
        sim_down(spec.name, spec.root.parent)
        raise
    return spec


def _network(spec: SimSpec) -> None:
    m, r = spec.mgmt_ns, spec.rack_ns
    run("ip", "netns", "add", m)
    run("ip", "netns", "add", r)
    run("ip", "-n", r, "link", "add", BRIDGE, "type", "bridge")
    run("ip", "-n", r, "link", "set", BRIDGE, "up")
    run("ip", "-n", m, "link", "set", "lo", "up")
    # No duplicate address detection on pxe0: its link-local address is usable at once for
    # router advertisements (RFC 4862 section 5.4 allows disabling DAD per interface).
    run("ip", "netns", "exec", m, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0")
    run(
        "ip", "-n", m, "link", "add", PXE_IFACE, "address", spec.pxe_mac,
        "type", "veth", "peer", "name", UPLINK, "netns", r,
    )  # fmt: skip
    run("ip", "-n", r, "link", "set", UPLINK, "master", BRIDGE, "up")
    run("ip", "-n", m, "addr", "add", f"{spec.server}/{spec.prefix}", "dev", PXE_IFACE)
    run("ip", "-n", m, "link", "set", PXE_IFACE, "up")
    for node in spec.nodes:
        run("ip", "-n", r, "tuntap", "add", "dev", node.tap, "mode", "tap")
        run("ip", "-n", r, "link", "set", node.tap, "master", BRIDGE, "up")


def _racker_files(spec: SimSpec, guest: GuestFiles, password: Secret) -> None:
    oem = spec.oem_dir
    oem.mkdir(mode=0o700)
    lines = ["Primary MAC address, BMC MAC address, Node Type, Comments"]
    lines.append(f"{spec.pxe_mac}, 52:54:00:5b:00:01, management, racker sim {spec.name}")
    for node in spec.nodes:
        lines.append(f"{node.mac}, {node.bmc_mac}, worker, {node.name} ({node.firmware})")
    (oem / "nodes.csv").write_text("\n".join(lines) + "\n")
    write_credentials(oem, BMC_USER, password)
    write_pxe_interface(oem, spec.pxe_mac)

    addresses = "\n".join(f'    "{n.mac}": "{n.bmc_host}:{BMC_PORT}"' for n in spec.nodes)
    spec.config_path.write_text(
        f"# racker.yaml for the simulated rack {spec.name!r} (written by racker sim up).\n"
        f"# Run racker inside its management namespace:\n"
        f"#   ip netns exec {spec.mgmt_ns} racker --config {spec.config_path} serve\n"
        f"interface: {PXE_IFACE}\n"
        f"oem_dir: {oem}\n"
        f"state_dir: {spec.state_dir}\n"
        f"tftp:\n"
        f"  # Debian's /usr/lib/ipxe/ipxe.efi is a symlink to /boot, which racker's TFTP\n"
        f"  # refuses; the sim serves dereferenced copies of Debian's loaders.\n"
        f"  ipxe_dir: {spec.root / 'ipxe'}\n"
        f"{_boot_section(spec)}"
        f"install:\n"
        f'  version: "{SIM_VERSION}"\n'
        f"bmc:\n"
        f"  # The BMCs are ipmi_sim on the management namespace's loopback.\n"
        f"  addresses:\n{addresses}\n"
    )
    loaders = spec.root / "ipxe"
    loaders.mkdir()
    for name in ("undionly.kpxe", "ipxe.efi", "snponly.efi"):
        shutil.copyfile(IPXE_DIR / name, loaders / name)  # follows Debian's symlinks
    # The asset mirror (racker.mirror.flatcar layout) with the sim guest as "Flatcar".
    flatcar = spec.state_dir / "assets" / "flatcar"
    release = flatcar / SIM_VERSION
    release.mkdir(parents=True)
    shutil.copyfile(guest.kernel, release / PXE_KERNEL)
    shutil.copyfile(guest.initramfs, release / PXE_INITRD)
    (release / "version.txt").write_text(f"FLATCAR_VERSION={SIM_VERSION}\n# racker sim guest\n")
    (flatcar / "current-stable").symlink_to(SIM_VERSION)


def _boot_section(spec: SimSpec) -> str:
    if not uefi_http(spec):
        return ""
    # OVMF tries PXEv4 before HTTPv4: racker must leave its PXE request without a boot file.
    return "boot:\n  uefi_http: true\n"


def _node(spec: SimSpec, node: SimNode, guest: GuestFiles, python: str, password: Secret) -> None:
    d = spec.node_dir(node)
    d.mkdir(mode=0o700)
    program = spec.root / "chassis_control"
    if not program.exists():
        shutil.copyfile(DATA / "chassis_control", program)
        program.chmod(0o755)
    (d / "env").write_text(f"PYTHON='{python}'\nRACK_NS='{spec.rack_ns}'\n")
    disk = d / "disk.img"
    with disk.open("wb") as f:
        f.truncate(DISK_MIB << 20)
    if node.firmware != "bios":
        shutil.copyfile(OVMF_VARS, d / "vars.fd")
    VmConfig(
        name=f"{spec.name}-{node.name}",
        firmware=node.firmware,
        mac=node.mac,
        uuid=node.uuid,
        tap=node.tap,
        disk=str(disk),
        vars=str(d / "vars.fd"),
        kernel=str(guest.kernel),
        initramfs=str(guest.initramfs),
        memory_mib=spec.memory_mib,
    ).dump(d / "vm.json")
    lan = (
        (DATA / "lan.conf")
        .read_text()
        .format(
            name=node.name,
            host=node.bmc_host,
            port=BMC_PORT,
            guid=secrets.token_hex(16),
            program=program,
            node_dir=d,
            user=BMC_USER,
            password=password.reveal(),
        )
    )
    conf = d / "lan.conf"
    conf.touch(mode=0o600)
    conf.write_text(lan)
    shutil.copyfile(DATA / "cmds.conf", d / "cmds.conf")
    start_bmc(spec, node)


def start_bmc(spec: SimSpec, node: SimNode, timeout: float = 10.0) -> None:
    d = spec.node_dir(node)
    argv = ["ip", "netns", "exec", spec.mgmt_ns, IPMI_SIM, "-c", str(d / "lan.conf")]
    argv += ["-f", str(d / "cmds.conf"), "-s", str(d / "persist"), "-n"]
    with (d / "bmc.log").open("ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    _CHILDREN[proc.pid] = proc
    (d / "ipmi_sim.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not _udp_bound(proc.pid, node.bmc_host, BMC_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            text = (d / "bmc.log").read_text(errors="replace")[-1000:]
            raise SimError(f"ipmi_sim for {node.name} did not start: {text.strip()}")
        time.sleep(0.05)


def _udp_bound(pid: int, host: str, port: int) -> bool:
    """Is host:port bound in the network namespace of ``pid`` (its /proc/PID/net/udp)?"""
    want = bytes(int(x) for x in host.split("."))[::-1].hex().upper() + f":{port:04X}"
    try:
        lines = Path(f"/proc/{pid}/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == want for line in lines if line.strip())


# -- down -------------------------------------------------------------------------------------


def sim_down(name: str, root: Path = DEFAULT_ROOT) -> list[str]:
    """Remove the sim ``name`` entirely; returns what was removed (empty: nothing was there)."""
    spec = load_spec(name, root)
    mgmt, rack = (spec.mgmt_ns, spec.rack_ns) if spec else (f"rsim-{name}-m", f"rsim-{name}-r")
    removed: list[str] = []
    existing = namespaces()
    # Power off first (supervisors stop QEMU), then whatever still runs in the namespaces.
    if spec is not None:
        for node in spec.nodes:
            pid = _pid(spec.node_dir(node) / "supervisor.pid")
            if pid is not None and _signal(pid, signal.SIGTERM):
                removed.append(f"{node.name}: VM")
    for ns in (rack, mgmt):
        if ns in existing:
            count = _kill_namespace(ns)
            if count:
                removed.append(f"{ns}: {count} process(es)")
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
            removed.append(f"namespace {ns}")
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            del _CHILDREN[pid]
    directory = root / name
    if directory.exists():
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(str(directory))
    return removed


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _ns_pids(ns: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split() if p.isdigit()]


def _kill_namespace(ns: str, grace: float = 3.0) -> int:
    pids = _ns_pids(ns)
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _ns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _ns_pids(ns):
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while _ns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(pids)


# -- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeStatus:
    node: SimNode
    bmc_up: bool
    power: bool
    boot: str
    installed: bool
    last: str  # the newest "racker-sim" line of its serial console


def _alive(path: Path) -> bool:
    pid = _pid(path)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        return True
    return False


def last_console_line(path: Path) -> str:
    try:
        text = path.read_bytes()[-16384:].decode(errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if "racker-sim" in ln]
    return lines[-1] if lines else ""


def sim_status(name: str, root: Path = DEFAULT_ROOT) -> tuple[SimSpec, list[NodeStatus]]:
    spec = load_spec(name, root)
    if spec is None:
        raise EnvironmentProblem(f"no sim named {name} is up", "start one with 'racker sim up'")
    rows = []
    for node in spec.nodes:
        d = spec.node_dir(node)
        try:
            boot = (d / "boot").read_text().strip() or "default"
        except FileNotFoundError:
            boot = "default"
        rows.append(
            NodeStatus(
                node,
                _alive(d / "ipmi_sim.pid"),
                _alive(d / "supervisor.pid"),
                boot,
                installed(d / "disk.img"),
                last_console_line(d / SERIAL_LOG),
            )
        )
    return spec, rows
