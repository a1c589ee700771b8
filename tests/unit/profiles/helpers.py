"""Shared fixtures for profile tests: a fixture node, settings and a profile-dir writer."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import MappingProxyType

from racker.model import Node
from racker.profiles import NodeFacts, PublicNic, RenderContext, RenderSettings

NODE = Node(
    line=3,
    index=2,
    primary_mac="52:54:00:12:34:56",
    bmc_mac="52:54:00:12:34:57",
    secondary_mac="52:54:00:ab:cd:ef",
    node_type="compute",
)
SINGLE_NIC = Node(
    line=4,
    index=3,
    primary_mac="52:54:00:12:34:60",
    bmc_mac="52:54:00:12:34:61",
    secondary_mac=None,
    node_type="storage",
)
SETTINGS = RenderSettings(
    console=("tty0", "ttyS0,115200n8"),
    ssh_authorized_keys=("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFixtureKeyOnly ops@example",),
    install_disks=MappingProxyType({"*": "smallest", "storage": "/dev/nvme0n1"}),
    prefix=24,
    gateway="10.99.0.1",
    dns=("10.99.0.1",),
    public=MappingProxyType(
        {NODE.primary_mac: PublicNic("203.0.113.20", 24, "203.0.113.1", ("203.0.113.53",))}
    ),
    flatcar_channel="stable",
    flatcar_version="3975.2.0",
)
SERVER = "http://10.99.0.1:8080"


def context(
    node: Node | None = NODE,
    *,
    role: str | None = "worker",
    installed: bool = False,
    settings: RenderSettings = SETTINGS,
    labels: dict[str, str] | None = None,
) -> RenderContext:
    mac = node.primary_mac if node else "52:54:00:99:99:99"
    return RenderContext(
        node=node,
        role=role,
        installed=installed,
        address="10.99.0.70" if node else None,
        server_url=SERVER,
        ignition_url=f"{SERVER}/ignition?mac={mac}&token=TOKEN-I",
        events_url=f"{SERVER}/events?mac={mac}&token=TOKEN-E",
        assets_url=f"{SERVER}/assets",
        settings=settings,
        labels=labels or {},
    )


def facts(mac: str | None = NODE.primary_mac, **kw: str) -> NodeFacts:
    return NodeFacts(mac=mac, **kw)  # type: ignore[arg-type]


def write_dir(root: Path, files: dict[str, str]) -> Path:
    """Write a profile directory: {"profiles/a.yaml": "...", "templates/x": "..."}."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


# A minimal valid directory that tests extend or break one file at a time.
BASE = {
    "profiles/boot.yaml": """
        boot:
          kernel: "{{ assets_url }}/vmlinuz"
          initrd: ["{{ assets_url }}/initrd.img"]
          args: ["console=ttyS0", "ignition.config.url={{ ignition_url }}"]
        ignition: boot.ign.yaml
        """,
    "templates/boot.ign.yaml": """
        ignition: {version: 3.3.0}
        storage:
          files:
            - path: /etc/hostname
              mode: 420
              contents: {source: {{ (hostname ~ "\\n") | data_url | json }}}
        """,
    "groups/default.yaml": """
        profile: boot
        """,
}
