"""Benchmark: end-to-end network install of one BIOS and one UEFI simulated node, phase by
phase, served by racker (``racker bootstrap``) and by the reference setup (dnsmasq for DHCP,
TFTP and router advertisements + Python's http.server, powered on with ipmitool), same run.

    .venv/bin/python bench/boot.py [--no-ra-run]

Each setup gets a fresh ``racker sim`` (QEMU TCG: SeaBIOS + iPXE ROM on e1000, OVMF's own PXE
on virtio-net; ipmi_sim BMCs). A capture on the rack bridge gives every phase's time from the
node's power-on (the chassis program's "set power 1"): firmware DHCP ACK, TFTP loader request
(UEFI), iPXE's /boot.ipxe, the kernel request, the installer's Ignition request, its
"installed" post, and the installed system's DHCP ACK. ``--no-ra-run`` skips the third setup
(racker with ``dhcp.router_advertisements: false``, to show iPXE's IPv6 wait). The reference's
dnsmasq runs with its defaults (it pings an address before offering it: ~3 s). Needs root;
creates and removes its own namespaces; prints a markdown table.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# bench/http.py would shadow the standard library's http package: drop bench/ from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
try:
    import racker.sim  # noqa: F401
except ImportError:
    sys.path[:0] = [str(REPO / "src")]

from racker.sim.demo import racker_argv  # noqa: E402
from racker.sim.rack import sim_down, sim_up  # noqa: E402
from racker.sim.spec import PXE_IFACE, SimSpec, plan_sim  # noqa: E402

PHASES = ("dhcp", "loader", "boot.ipxe", "kernel", "ignition", "installed", "os dhcp")
TIMEOUT = 420.0

REFERENCE_HTTP = """
import http.server, os, sys
os.chdir(sys.argv[1])
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer((sys.argv[2], 8080), Handler).serve_forever()
"""


@dataclass
class NodeTimes:
    firmware: str
    power_on: float
    marks: dict[str, float] = field(default_factory=dict)


def mark(times: NodeTimes, phase: str, ts: float) -> None:
    times.marks.setdefault(phase, ts - times.power_on)


def capture(spec: SimSpec, pcap: Path) -> subprocess.Popen[bytes]:
    # Requests only (client -> server with data), so the kernel downloads are not recorded.
    flt = "udp port 67 or udp port 68 or udp port 69 or (tcp dst port 8080 and tcp[13] & 8 != 0)"
    proc = subprocess.Popen(
        ["ip", "netns", "exec", spec.rack_ns, "tcpdump", "-i", "br0", "-U", "-w", str(pcap), flt],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    return proc


def power_on_times(spec: SimSpec) -> dict[str, float]:
    out = {}
    for node in spec.nodes:
        for line in (spec.node_dir(node) / "calls.log").read_text().splitlines():
            ts, call = line.split(" ", 1)
            if call.strip() == "set power 1":
                out[node.mac] = float(ts)
                break
    return out


def analyse(spec: SimSpec, pcap: Path) -> dict[str, NodeTimes]:
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.packet import Raw
    from scapy.utils import rdpcap

    power = power_on_times(spec)
    nodes = {n.mac: NodeTimes(n.firmware, power[n.mac]) for n in spec.nodes if n.mac in power}
    owner: dict[str, str] = {}  # IP -> MAC, from ACKs
    for pkt in rdpcap(str(pcap)):
        ts = float(pkt.time)
        if pkt.haslayer(BOOTP) and pkt[UDP].dport == 68:
            mac = ":".join(f"{b:02x}" for b in bytes(pkt[BOOTP].chaddr)[:6])
            opts = {o[0]: o[1] for o in pkt[DHCP].options if isinstance(o, tuple)}
            if mac in nodes and opts.get("message-type") == 5:
                owner[pkt[BOOTP].yiaddr] = mac
                t = nodes[mac]
                mark(t, "dhcp", ts)
                if "installed" in t.marks:
                    mark(t, "os dhcp", ts)
        elif pkt.haslayer(UDP) and pkt[UDP].dport == 69 and pkt.haslayer(Raw):
            mac = owner.get(pkt[IP].src, "")
            if mac in nodes and bytes(pkt[Raw].load)[:2] == b"\x00\x01":
                mark(nodes[mac], "loader", ts)
        elif pkt.haslayer(TCP) and pkt.haslayer(Raw):
            mac = owner.get(pkt[IP].src, "")
            line = bytes(pkt[Raw].load).split(b"\r\n", 1)[0].decode(errors="replace")
            if mac not in nodes:
                continue
            t = nodes[mac]
            if line.startswith("GET /boot.ipxe"):
                mark(t, "boot.ipxe", ts)
            elif line.startswith("GET ") and "vmlinuz" in line:
                mark(t, "kernel", ts)
            elif line.startswith("GET /ignition"):
                mark(t, "ignition", ts)
            elif b'"event": "installed"' in bytes(pkt[Raw].load):
                mark(t, "installed", ts)  # the POST's body (its own segment or the headers')
    return nodes


def wait_installed(spec: SimSpec, deadline: float) -> None:
    while time.monotonic() < deadline:
        logs = [(spec.node_dir(n) / "serial.log") for n in spec.nodes]
        if all(p.exists() and "installed system up" in p.read_text(errors="replace") for p in logs):
            time.sleep(2)  # let the last DHCP exchange land in the capture
            return
        time.sleep(1)
    raise SystemExit("bench: the nodes did not come up installed in time")


def run_reference(spec: SimSpec, work: Path) -> None:
    www = work / "www"
    www.mkdir()
    release = spec.state_dir / "assets" / "flatcar" / "0.0.1"
    for name in ("flatcar_production_pxe.vmlinuz", "flatcar_production_pxe_image.cpio.gz"):
        (www / name).write_bytes((release / name).read_bytes())
    url = f"http://{spec.server}:8080"
    (www / "boot.ipxe").write_text(
        "#!ipxe\n"
        f"kernel {url}/flatcar_production_pxe.vmlinuz initrd=flatcar_production_pxe_image.cpio.gz"
        f" console=ttyS0,115200n8 ignition.config.url={url}/ignition?mac=${{mac}}\n"
        f"initrd {url}/flatcar_production_pxe_image.cpio.gz\nboot\n"
    )
    script = f"#!/bin/bash\nEVENTS_URL='{url}/api/v1/events'\n".encode()
    source = "data:;base64," + base64.b64encode(script).decode()
    (www / "ignition").write_text(
        '{"ignition": {"version": "3.3.0"}, "storage": {"files": [{"path": '
        f'"/opt/racker/install.sh", "contents": {{"source": "{source}"}}}}]}}}}\n'
    )
    lo, hi = spec.server.rsplit(".", 1)[0] + ".100", spec.server.rsplit(".", 1)[0] + ".200"
    conf = work / "dnsmasq.conf"
    conf.write_text(
        # user=root: the sim directory is private (0700); nobody could not read the loaders.
        f"port=0\nuser=root\ninterface={PXE_IFACE}\nbind-interfaces\ndhcp-range={lo},{hi},1h\n"
        f"dhcp-range=::,constructor:{PXE_IFACE},ra-only\nenable-ra\n"
        f"enable-tftp\ntftp-root={spec.root / 'ipxe'}\n"
        "dhcp-match=set:ipxe,175\ndhcp-match=set:efi,option:client-arch,7\n"
        f"dhcp-boot=tag:ipxe,{url}/boot.ipxe\n"
        "dhcp-boot=tag:!ipxe,tag:efi,ipxe.efi\ndhcp-boot=tag:!ipxe,tag:!efi,undionly.kpxe\n"
        f"dhcp-leasefile={work / 'leases'}\n"
    )
    ns = ["ip", "netns", "exec", spec.mgmt_ns]
    # dnsmasq builds its RA prefix from an IPv6 address on the interface ("constructor"):
    # without one it sends no RA at all, and iPXE waits for one.
    subprocess.run(
        ["ip", "-n", spec.mgmt_ns, "addr", "add", "fd00:99::1/64", "dev", PXE_IFACE], check=True
    )
    subprocess.run(
        [*ns, "dnsmasq", "-C", str(conf), f"--pid-file={work / 'dnsmasq.pid'}"], check=True
    )
    subprocess.Popen(
        [*ns, sys.executable, "-c", REFERENCE_HTTP, str(www), spec.server],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    time.sleep(1.0)
    env = {**os.environ, "IPMI_PASSWORD": (spec.oem_dir / "ipmi_password").read_text().strip()}
    for node in spec.nodes:
        base = [
            *ns,
            "ipmitool",
            "-I",
            "lanplus",
            "-C",
            "3",
            "-H",
            node.bmc_host,
            "-U",
            "admin",
            "-E",
        ]
        subprocess.run(
            [*base, "chassis", "bootdev", "pxe"], check=True, env=env, capture_output=True
        )
        subprocess.run([*base, "chassis", "power", "on"], check=True, env=env, capture_output=True)
    wait_installed(spec, time.monotonic() + TIMEOUT)


def run_racker(spec: SimSpec, ra: bool) -> None:
    if not ra:
        with spec.config_path.open("a") as f:
            f.write("dhcp:\n  router_advertisements: false\n")
    argv = racker_argv(spec, "bootstrap", "--on-failure", "cancel", "--stagger", "0")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"bench: racker bootstrap failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    wait_installed(spec, time.monotonic() + 60)


def one(label: str, runner: str, ra: bool = True) -> dict[str, NodeTimes]:
    name = "bench" + str(os.getpid() % 1000)
    with tempfile.TemporaryDirectory(prefix="racker-bench-boot-") as tmp:
        work = Path(tmp)
        spec = plan_sim(name, 2, "mixed", root=work / "sims")
        try:
            sim_up(spec)
            tcpdump = capture(spec, work / "boot.pcap")
            try:
                if runner == "reference":
                    run_reference(spec, work)
                else:
                    run_racker(spec, ra)
            finally:
                tcpdump.terminate()
                tcpdump.wait(10)
            print(f"bench: {label} done", file=sys.stderr)
            return analyse(spec, work / "boot.pcap")
        finally:
            sim_down(name, work / "sims")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-ra-run", action="store_true", help="skip racker without RAs")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench: needs root (network namespaces, QEMU taps, BMCs)")
    setups = [("dnsmasq + http.server", "reference", True), ("racker", "racker", True)]
    if not args.no_ra_run:
        setups.append(("racker, no RAs", "racker", False))
    results = [(label, one(label, runner, ra)) for label, runner, ra in setups]
    print("| setup | firmware | " + " | ".join(PHASES) + " |")
    print("|---|---|" + "---:|" * len(PHASES))
    for label, nodes in results:
        for t in sorted(nodes.values(), key=lambda t: t.firmware):
            cells = [f"{t.marks[p]:.1f}" if p in t.marks else "-" for p in PHASES]
            print(f"| {label} | {t.firmware} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
