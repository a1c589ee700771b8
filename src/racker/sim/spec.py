"""What a simulated rack is made of: names, addresses, MACs, firmware per node (pure).

A sim named NAME is two network namespaces and one directory:

- ``rsim-NAME-m`` (management): ``pxe0`` (racker's PXE interface, the subnet's first address),
  and on its own loopback one ``ipmi_sim`` BMC per node at 127.0.6.(10+i):623; racker reaches
  them through ``bmc.addresses`` in the generated racker.yaml.
- ``rsim-NAME-r`` (the rack's L2 segment): bridge ``br0``, the other end of ``pxe0`` (``up0``),
  and one tap per node (``tapI``) that its QEMU VM opens. Nothing else is attached.
- the sim directory (``/run/racker-sim/NAME``): ``sim.json`` (this spec), the generated OEM
  directory and racker.yaml, racker's state directory (with the asset mirror), and one
  directory per node (BMC config, disk image, UEFI variables, serial log, power/boot state).
"""

from __future__ import annotations

import ipaddress
import json
import re
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

# uefi: OVMF's own PXE (TFTP ipxe.efi); uefi-http: OVMF's UEFI HTTP Boot (HTTP ipxe.efi).
Firmware = Literal["bios", "uefi", "uefi-http"]
FIRMWARE_CHOICES = ("bios", "uefi", "uefi-http", "mixed")
DEFAULT_ROOT = Path("/run/racker-sim")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
BMC_PORT = 623
BMC_FIRST_HOST = 10  # 127.0.6.10 is node 0's BMC
SIM_VERSION = "0.0.1"  # the asset mirror's "Flatcar version" holding the sim guest
PXE_IFACE = "pxe0"
BRIDGE = "br0"
UPLINK = "up0"


class SimSpecError(ValueError):
    """Bad sim parameters (the CLI turns it into a usage error)."""


@dataclass(frozen=True)
class SimNode:
    index: int
    firmware: Firmware
    mac: str  # the PXE NIC (nodes.csv primary MAC)
    bmc_mac: str  # only for nodes.csv: the BMC is reached by bmc_host, not by DHCP
    bmc_host: str
    uuid: str
    tap: str

    @property
    def name(self) -> str:
        return f"node{self.index}"

    @property
    def hostname(self) -> str:
        # racker's default hostname: node type + the MAC's last three bytes (model.Node)
        return "worker-" + self.mac.replace(":", "")[6:]


@dataclass(frozen=True)
class SimSpec:
    name: str
    firmware: str  # bios, uefi, uefi-http or mixed
    nodes: tuple[SimNode, ...]
    subnet: str
    directory: str
    memory_mib: int = 384

    @property
    def mgmt_ns(self) -> str:
        return f"rsim-{self.name}-m"

    @property
    def rack_ns(self) -> str:
        return f"rsim-{self.name}-r"

    @property
    def root(self) -> Path:
        return Path(self.directory)

    @property
    def server(self) -> str:
        return str(next(ipaddress.IPv4Network(self.subnet).hosts()))

    @property
    def prefix(self) -> int:
        return ipaddress.IPv4Network(self.subnet).prefixlen

    @property
    def pxe_mac(self) -> str:
        return "52:54:00:5a:00:01"

    @property
    def oem_dir(self) -> Path:
        return self.root / "oem"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config_path(self) -> Path:
        return self.root / "racker.yaml"

    def node_dir(self, node: SimNode) -> Path:
        return self.root / node.name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SimSpec:
        raw = json.loads(text)
        nodes = tuple(SimNode(**n) for n in raw.pop("nodes"))
        return cls(nodes=nodes, **raw)


def plan_sim(
    name: str,
    count: int,
    firmware: str,
    subnet: str = "10.99.0.0/24",
    root: Path = DEFAULT_ROOT,
) -> SimSpec:
    """The spec of a sim with ``count`` nodes; ``mixed`` alternates BIOS and UEFI."""
    if not NAME_RE.match(name):
        raise SimSpecError(f"sim name {name!r}: use 1-16 of a-z, 0-9 and '-'")
    if not 1 <= count <= 64:
        raise SimSpecError(f"--nodes {count}: a sim has 1 to 64 nodes")
    if firmware not in FIRMWARE_CHOICES:
        raise SimSpecError(f"--firmware {firmware}: expected one of {', '.join(FIRMWARE_CHOICES)}")
    network = ipaddress.IPv4Network(subnet)
    if network.num_addresses < 16:
        raise SimSpecError(f"subnet {subnet} is too small for a rack")
    nodes = []
    for i in range(count):
        mixed: Firmware = "bios" if i % 2 == 0 else "uefi"
        kind = mixed if firmware == "mixed" else typing.cast(Firmware, firmware)
        nodes.append(
            SimNode(
                index=i,
                firmware=kind,
                mac=f"52:54:00:5a:01:{0x10 + i:02x}",
                bmc_mac=f"52:54:00:5b:01:{0x10 + i:02x}",
                bmc_host=f"127.0.6.{BMC_FIRST_HOST + i}",
                uuid=f"3f1c7a52-8e4b-4d2a-9c61-5b0e7d2a{0x10 + i:04x}",
                tap=f"tap{i}",
            )
        )
    return SimSpec(name, firmware, tuple(nodes), str(network), str(root / name))


def uefi_http(spec: SimSpec) -> bool:
    """Does racker.yaml set ``boot.uefi_http`` (some node boots by UEFI HTTP)?"""
    return any(node.firmware == "uefi-http" for node in spec.nodes)
