"""From NODE arguments to BMC targets (layer 1: pure; data in, targets or errors out).

A NODE is a primary MAC, a BMC MAC (any separator or case), a hostname (``Node.hostname``,
e.g. ``worker-a1b2c3``) or a row number of nodes.csv (``Node.index``, from 1). A BMC's address
is racker's own allocation for the node's BMC MAC (DHCP hands exactly that address to the BMC),
unless racker.yaml's ``bmc.addresses`` names a static one for the node: ``host`` or
``host:port`` (IPv6 as ``[addr]:port``; the port is IPMI's), or a Redfish URL
``https://host[:port]`` / ``http://host:port``, which pins that BMC to Redfish.
"""

from __future__ import annotations

import ipaddress
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from racker.errors import BmcNotConfigured, ConfigError, NodeNotFound, Problem
from racker.model import AddressKind, Inventory, Node, parse_mac
from racker.power.base import IPMI_PORT, URL_SCHEMES, BmcCredentials, BmcTarget
from racker.rack.allocation import Allocation

NODE_HELP = "NODE is a primary MAC, BMC MAC, hostname or row number of nodes.csv"


def find_node(inventory: Inventory, ref: str) -> Node | None:
    text = ref.strip()
    mac = parse_mac(text)
    if mac is not None:
        return inventory.by_mac(mac)
    if text.isdigit():
        index = int(text)
        return next((n for n in inventory.nodes if n.index == index), None)
    lowered = text.lower()
    return next((n for n in inventory.nodes if n.hostname.lower() == lowered), None)


def select_nodes(inventory: Inventory, refs: Sequence[str], all_nodes: bool = False) -> list[Node]:
    """The nodes named by ``refs`` (or every provisionable node), in order, without repeats.

    The management node (where racker runs) is never selected: powering it off would stop
    racker itself.
    """
    if all_nodes:
        if refs:
            raise NodeNotFound(
                "give either NODE arguments or --all, not both", "drop --all to name nodes"
            )
        return list(inventory.provisionable)
    if not refs:
        raise NodeNotFound("no NODE given", f"{NODE_HELP}; or pass --all")
    chosen: list[Node] = []
    for ref in refs:
        node = find_node(inventory, ref)
        if node is None:
            raise NodeNotFound(f"no node {ref!r} in {inventory.source}", _hint(inventory))
        if node is inventory.management:
            raise NodeNotFound(
                f"{ref!r} is the management node ({node.hostname}); racker runs there and "
                "does not control its power",
                "name another node",
            )
        if node not in chosen:
            chosen.append(node)
    return chosen


def _hint(inventory: Inventory) -> str:
    rows = len(inventory.nodes)
    example = inventory.provisionable[0].hostname if inventory.provisionable else None
    extra = f" (e.g. {example}, or 1..{rows})" if example else ""
    return NODE_HELP + extra


def parse_host_port(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (host, port). Raises ValueError."""
    text = text.strip()
    if not text:
        raise ValueError("empty address")
    host, port_text, has_port = text, "", False
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after an IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError("expected ':PORT' after ']'")
        port_text, has_port = rest[1:], bool(rest)
        ipaddress.IPv6Address(host)
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        has_port = True
    elif ":" in text:
        ipaddress.IPv6Address(text)  # a bare IPv6 address, no port
    if not host:
        raise ValueError("empty host")
    port = IPMI_PORT
    if has_port:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return host, port


class BmcAddress(NamedTuple):
    """A static BMC address from ``bmc.addresses``."""

    host: str
    port: int
    scheme: str | None = None  # "https"/"http": a Redfish URL; None: host[:port] (IPMI port)


def parse_address(text: str) -> BmcAddress:
    """``host[:port]`` or a Redfish URL ``https://host[:port]`` / ``http://host:port``.
    Raises ValueError."""
    text = text.strip()
    scheme, sep, _rest = text.partition("://")
    if not sep:
        return BmcAddress(*parse_host_port(text))
    scheme = scheme.lower()
    if scheme not in URL_SCHEMES:
        raise ValueError(f"a BMC URL starts with https:// or http://, not {scheme}://")
    url = urllib.parse.urlsplit(text)
    if url.username is not None or url.password is not None:
        raise ValueError("no user or password in a BMC URL: they come from the OEM files")
    if url.path not in ("", "/", "/redfish/v1", "/redfish/v1/") or url.query or url.fragment:
        raise ValueError("a BMC URL is scheme, host and port only (racker adds /redfish/v1/)")
    try:
        port = url.port
    except ValueError:
        raise ValueError("the URL's port is not a number from 1 to 65535") from None
    if not url.hostname:
        raise ValueError("the URL has no host")
    return BmcAddress(url.hostname, port or URL_SCHEMES[scheme], scheme)


def static_addresses(
    inventory: Inventory, overrides: Mapping[str, str], source: str = "racker.yaml"
) -> dict[str, BmcAddress]:
    """``bmc.addresses`` resolved to {primary MAC: address}; every bad entry reported."""
    problems: list[Problem] = []
    resolved: dict[str, BmcAddress] = {}
    for ref, value in overrides.items():
        key = f"bmc.addresses.{ref}"
        node = find_node(inventory, ref)
        if node is None:
            problems.append(Problem(source, None, f"{key}: no such node", _hint(inventory), ref))
            continue
        try:
            address = parse_address(str(value))
        except ValueError as exc:
            hint = "write host, host:port or https://host[:port]"
            problems.append(Problem(source, None, f"{key}: {exc}", hint, str(value)))
            continue
        if node.primary_mac in resolved and resolved[node.primary_mac] != address:
            problems.append(Problem(source, None, f"{key}: node {node.hostname} given twice"))
            continue
        resolved[node.primary_mac] = address
    if problems:
        raise ConfigError(problems)
    return resolved


def bmc_target(
    node: Node,
    credentials: BmcCredentials | None,
    allocations: Mapping[str, Allocation],
    static: Mapping[str, BmcAddress],
) -> BmcTarget:
    """The BMC target of ``node``; ``BmcNotConfigured`` if racker lacks its address or login."""
    scheme = None
    if node.primary_mac in static:
        host, port, scheme = static[node.primary_mac]
    else:
        allocation = allocations.get(node.bmc_mac)
        if allocation is None or allocation.kind is not AddressKind.BMC:
            raise BmcNotConfigured(
                node.hostname,
                f"no address allocated for BMC MAC {node.bmc_mac}",
                "run 'racker serve' once (it allocates BMC addresses) or set bmc.addresses "
                "in racker.yaml",
            )
        host, port = str(allocation.address), IPMI_PORT
    if credentials is None:
        raise BmcNotConfigured(
            node.hostname,
            "no BMC credentials",
            "write the OEM files ipmi_user and ipmi_password ('racker factory init')",
        )
    macs = tuple(m for m in (node.primary_mac, node.secondary_mac) if m)
    return BmcTarget(node.hostname, host, credentials, port, node.primary_mac, scheme, macs)


def bmc_targets(
    nodes: Iterable[Node],
    credentials: BmcCredentials | None,
    allocations: Mapping[str, Allocation],
    static: Mapping[str, BmcAddress],
) -> list[tuple[Node, BmcTarget | BmcNotConfigured]]:
    """Every node's target, or the reason it has none (so one bad row spoils nothing)."""
    out: list[tuple[Node, BmcTarget | BmcNotConfigured]] = []
    for node in nodes:
        try:
            out.append((node, bmc_target(node, credentials, allocations, static)))
        except BmcNotConfigured as exc:
            out.append((node, exc))
    return out


def resolve_targets(
    inventory: Inventory,
    refs: Sequence[str],
    *,
    all_nodes: bool,
    credentials: BmcCredentials | None,
    allocations: Mapping[str, Allocation],
    overrides: Mapping[str, str],
    include_management: bool = False,
    source: str = "racker.yaml",
) -> list[tuple[Node, BmcTarget | BmcNotConfigured]]:
    """NODE arguments (or --all) to targets: what ``racker power``/``bootdev``/``bmc check``
    need. ``include_management`` (read-only commands) adds the management node to --all when
    ``bmc.addresses`` names its BMC: it shares the management node's public-side port, so it
    is not on the rack network and racker gives it no address of its own."""
    static = static_addresses(inventory, overrides, source)
    if all_nodes and include_management and not refs:
        management = inventory.management
        nodes = [n for n in inventory.nodes if n is not management or n.primary_mac in static]
    else:
        nodes = select_nodes(inventory, refs, all_nodes)
    return bmc_targets(nodes, credentials, allocations, static)
