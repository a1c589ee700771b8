"""What a rendering knows about the asking machine and the rack (layer 1: pure data).

``NodeFacts`` is what the request says (MAC, iPXE's ${platform}...); ``RenderContext`` is what
racker knows (the inventory row, role, install state, URLs with this node's tokens);
``RenderSettings`` is the part of racker.yaml that templates may use. The web server builds
the first two per request; the composition root builds the settings once.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from racker.model import NetworkPlan, Node, parse_mac
from racker.rack.config import Config

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class NodeFacts:
    """What we know about the machine asking, from the request itself."""

    mac: str | None  # normalised MAC (racker.model.parse_mac)
    uuid: str | None = None
    serial: str | None = None
    hostname: str | None = None
    platform: str | None = None  # iPXE ${platform}: pcbios / efi
    buildarch: str | None = None  # iPXE ${buildarch}: i386 / x86_64 / arm64
    query: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # raw query minus token


@dataclass(frozen=True)
class PublicNic:
    """Static settings for a node's secondary NIC (absent: DHCP)."""

    address: str
    prefix: int = 24
    gateway: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenderSettings:
    """The rack-wide settings templates see as ``settings``."""

    console: tuple[str, ...] = ("tty0", "ttyS0,115200n8")
    ssh_authorized_keys: tuple[str, ...] = ()
    # Install disk per node type ("*" = any other type): a device path, smallest, largest.
    install_disks: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({"*": "smallest"})
    )
    prefix: int = 24  # prefix length of the rack-internal subnet
    gateway: str | None = None  # rack-internal gateway (network.gateway)
    internal_default_route: bool = False
    dns: tuple[str, ...] = ()
    # Per node (normalised primary MAC or hostname) static public-NIC settings.
    public: Mapping[str, PublicNic] = field(default_factory=lambda: MappingProxyType({}))
    flatcar_channel: str = "stable"
    flatcar_version: str = "current"

    def disk_for(self, node_type: str | None) -> str:
        if node_type is not None and node_type in self.install_disks:
            return self.install_disks[node_type]
        return self.install_disks.get("*", "smallest")

    def public_for(self, node: Node | None) -> PublicNic | None:
        if node is None:
            return None
        return self.public.get(node.primary_mac) or self.public.get(node.hostname)

    @property
    def console_args(self) -> str:
        return " ".join(f"console={c}" for c in self.console)


def settings_from_config(
    config: Config, plan: NetworkPlan | None = None, flatcar_version: str | None = None
) -> RenderSettings:
    """Build the render settings from racker.yaml and the derived address plan.

    ``flatcar_version`` is the concrete version when ``install.version`` is "current" (the
    composition root reads it from the asset mirror: ``racker.mirror.flatcar.current_version``).
    """
    net = config.network
    subnet = plan.subnet if plan is not None else net.subnet
    gateway = plan.gateway if plan is not None else net.gateway
    dns = plan.dns if plan is not None and plan.dns else tuple(net.dns)
    public: dict[str, PublicNic] = {}
    for key, nic in config.install.public.items():
        norm = parse_mac(key) or key
        public[norm] = PublicNic(
            address=str(nic.address),
            prefix=nic.prefix,
            gateway=str(nic.gateway) if nic.gateway is not None else None,
            dns=tuple(str(d) for d in nic.dns),
        )
    version = config.install.version
    if version == "current" and flatcar_version:
        version = flatcar_version
    return RenderSettings(
        console=tuple(config.boot.console),
        ssh_authorized_keys=tuple(config.ssh_authorized_keys),
        install_disks=MappingProxyType(dict(config.install.disks)),
        prefix=subnet.prefixlen if subnet is not None else 24,
        gateway=str(gateway) if gateway is not None else None,
        internal_default_route=config.install.internal_default_route,
        dns=tuple(str(d) for d in dns),
        public=MappingProxyType(public),
        flatcar_channel=config.install.channel,
        flatcar_version=version,
    )


@dataclass(frozen=True)
class RenderContext:
    """What racker knows about the node, with URLs carrying this node's tokens."""

    node: Node | None  # inventory row for facts.mac (None = unknown machine)
    role: str | None  # e.g. "controller"/"worker" (bootstrap sets it)
    installed: bool  # node state says installed (os=installed selector)
    address: str | None  # the node's reserved primary-NIC address
    server_url: str  # e.g. "http://10.99.0.1:8080"
    ignition_url: str  # full URL incl. per-node token
    events_url: str  # phone-home URL incl. per-node token
    assets_url: str  # server_url + "/assets"
    settings: RenderSettings = field(default_factory=RenderSettings)
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)


def sample_node(mac: str = "52:54:00:00:00:11", node_type: str = "sample") -> Node:
    """A made-up inventory row for rendering everything once at load time."""
    return Node(
        line=2,
        index=1,
        primary_mac=mac,
        bmc_mac="52:54:00:00:01:11",
        secondary_mac="52:54:00:00:02:11",
        node_type=node_type,
    )


def sample_context(
    settings: RenderSettings,
    node: Node | None,
    *,
    role: str | None = "worker",
    installed: bool = False,
    labels: Mapping[str, str] = _EMPTY,
) -> RenderContext:
    server = "http://10.99.0.1:8080"
    mac = node.primary_mac if node is not None else "52:54:00:00:00:99"
    return RenderContext(
        node=node,
        role=role,
        installed=installed,
        address=str(ipaddress.IPv4Address("10.99.0.64")) if node is not None else None,
        server_url=server,
        ignition_url=f"{server}/ignition?mac={mac}&token=SAMPLE",
        events_url=f"{server}/events?mac={mac}&token=SAMPLE",
        assets_url=f"{server}/assets",
        settings=settings,
        labels=labels,
    )


def template_vars(facts: NodeFacts, ctx: RenderContext) -> dict[str, Any]:
    """The variables every template sees (documented in docs/profiles.md)."""
    node = ctx.node
    node_vars: dict[str, Any] | None = None
    if node is not None:
        node_vars = {
            "hostname": node.hostname,
            "primary_mac": node.primary_mac,
            "secondary_mac": node.secondary_mac,
            "bmc_mac": node.bmc_mac,
            "node_type": node.node_type,
            "index": node.index,
            "macs": list(node.macs),
        }
    hostname = node.hostname if node is not None else facts.hostname
    return {
        "mac": facts.mac,
        "uuid": facts.uuid,
        "serial": facts.serial,
        "platform": facts.platform,
        "buildarch": facts.buildarch,
        "query": dict(facts.query),
        "node": node_vars,
        "hostname": hostname,
        "node_type": node.node_type if node is not None else None,
        "role": ctx.role,
        "installed": ctx.installed,
        "address": ctx.address,
        "server_url": ctx.server_url,
        "ignition_url": ctx.ignition_url,
        "events_url": ctx.events_url,
        "assets_url": ctx.assets_url,
        "labels": dict(ctx.labels),
        "settings": ctx.settings,
        "console_args": ctx.settings.console_args,
        "install_disk": ctx.settings.disk_for(node.node_type if node is not None else None),
        "public": ctx.settings.public_for(node),
        "flatcar": {
            "channel": ctx.settings.flatcar_channel,
            "version": ctx.settings.flatcar_version,
        },
    }
