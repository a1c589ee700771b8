"""racker.yaml: parsing and validation (layer 1: pure; text in, ``Config`` or problems out).

Every key is optional; the defaults are the dataclass defaults below, and docs/config.md lists
them. The schema *is* these dataclasses: ``_build`` walks their type hints, so a new key is one
new field. Errors name the key and the file/line it is on.

YAML 1.1 (what PyYAML reads) turns an unquoted ``00:11:22:33:44:55`` into a base-60 integer; a
key or value that looks like that is reported with a hint to quote it instead of silently
becoming a number.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from racker.errors import ConfigError, Problem
from racker.model import AddressRange

DEFAULT_STATE_DIR = Path("/var/lib/racker")
DEFAULT_OEM_DIR = Path("/usr/share/oem")


@dataclass(frozen=True)
class NetworkConfig:
    # The rack-internal subnet. Default: the PXE interface's own subnet, else 172.24.213.0/24.
    subnet: ipaddress.IPv4Network | None = None
    # racker's address on the PXE interface. Default: the interface's IPv4 address in the
    # subnet, else the subnet's first host (added to a PXE interface that has none).
    server: ipaddress.IPv4Address | None = None
    # Reserved addresses for servers' primary NICs and for BMCs. Default: the second and third
    # quarter of the subnet (a /24 gives .64-.127 for nodes and .128-.191 for BMCs).
    nodes: AddressRange | None = None
    bmcs: AddressRange | None = None
    gateway: ipaddress.IPv4Address | None = None
    dns: list[ipaddress.IPv4Address] = field(default_factory=list)
    # Largest IP packet on the PXE link; default: the interface's MTU.
    mtu: int | None = None


@dataclass(frozen=True)
class RelaySegment:
    """A routed segment behind a DHCP relay (giaddr inside ``subnet``)."""

    subnet: ipaddress.IPv4Network
    pool: AddressRange
    gateway: ipaddress.IPv4Address | None = None


@dataclass(frozen=True)
class DhcpConfig:
    # What to do with MACs not in nodes.csv: ignore them (reported once as a discovery) or
    # lease them an address from ``pool``.
    unknown_clients: Literal["ignore", "pool"] = "ignore"
    # Dynamic addresses for unknown clients. Default: the last quarter of the subnet.
    pool: AddressRange | None = None
    lease_time: int = 86400
    pool_lease_time: int = 600
    # A client asking again while less than this fraction of its lease has passed is told the
    # time left instead of getting a new lease: nothing to write (ISC dhcpd, Kea do the same).
    cache_threshold: float = 0.25
    # Every lease is committed before its ACK is sent, so it survives racker being killed;
    # true: each commit is also fsynced (SQLite synchronous=FULL), so it survives a power loss.
    lease_sync: bool = False
    relays: list[RelaySegment] = field(default_factory=list)
    # Answer IPv6 router solicitations so iPXE does not wait ~13 s for one.
    router_advertisements: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.cache_threshold < 1:
            # At 1 a client could be told a lease with nothing left of it (Kea: 0 < t < 1).
            raise ValueError(
                f"cache_threshold {self.cache_threshold} must be at least 0 (off) and below 1"
            )


@dataclass(frozen=True)
class TftpConfig:
    # Extra files served read-only (besides the iPXE loaders).
    root: Path | None = None
    # Where the iPXE first stages live (Debian's ipxe package by default).
    ipxe_dir: Path = Path("/usr/lib/ipxe")
    case_insensitive: bool = False
    max_windowsize: int = 64
    timeout: float = 1.0
    retries: int = 5


@dataclass(frozen=True)
class HttpConfig:
    port: int = 8080
    # Default: <state_dir>/assets
    assets_dir: Path | None = None
    # Directory with profiles/ and groups/ (YAML); default: the built-in Flatcar profiles.
    profiles_dir: Path | None = None
    # Serve a node's script, tokens, Ignition and metadata only to the address it leased:
    # a machine must at least hold the node's lease to get its secrets.
    bind_to_lease: bool = True


@dataclass(frozen=True)
class BootConfig:
    bios_loader: str = "undionly.kpxe"
    uefi_loader: str = "ipxe.efi"
    # An arm64 iPXE binary (file name under tftp.root or ipxe_dir); arm64 clients are not
    # offered a boot file unless this is set.
    arm64_loader: str | None = None
    # UEFI HTTP Boot: false, true (every node), or a list of node types. Their UEFI PXE
    # requests get no boot file, so the firmware falls through to its HTTP boot entry.
    uefi_http: bool | list[str] = False
    console: list[str] = field(default_factory=lambda: ["tty0", "ttyS0,115200n8"])


@dataclass(frozen=True)
class BmcConfig:
    # Static BMC addresses per node (NODE: host, host:port, or a Redfish URL
    # https://host[:port] / http://host:port), instead of the allocation.
    addresses: dict[str, str] = field(default_factory=dict)
    # Upper bound for one BMC operation, in seconds.
    timeout: float = 20.0
    # Which power driver: auto (Redfish if the BMC answers it, else IPMI; see docs/config.md),
    # redfish, ipmi, or fake (in-memory, for tests and trials).
    driver: Literal["auto", "redfish", "ipmi", "fake"] = "auto"
    # Redfish over HTTPS: check the BMC's certificate against the system's CAs (true), not at
    # all (false), or against the CA bundle in this file.
    verify_tls: bool | Path = True


@dataclass(frozen=True)
class PublicNicConfig:
    """A static address for a node's secondary (public) NIC; without one it uses DHCP."""

    address: ipaddress.IPv4Address
    prefix: int = 24
    gateway: ipaddress.IPv4Address | None = None
    dns: list[ipaddress.IPv4Address] = field(default_factory=list)


@dataclass(frozen=True)
class InstallConfig:
    """What the built-in Flatcar profiles install (see docs/profiles.md)."""

    # Flatcar release served from the asset mirror: a version (X.Y.Z) or "current", which
    # means the version the channel's "current" link in the mirror points to.
    channel: Literal["stable", "beta", "alpha", "lts"] = "stable"
    version: str = "current"
    # Install disk per node type: a device path, "smallest" or "largest" (non-removable
    # disks, chosen at install time). Key "*" applies to node types not listed.
    disks: dict[str, str] = field(default_factory=lambda: {"*": "smallest"})
    # Static public-NIC settings per node (key: primary MAC, quoted, or hostname).
    public: dict[str, PublicNicConfig] = field(default_factory=dict)
    # Give installed nodes a default route via network.gateway on the internal NIC.
    internal_default_route: bool = False
    # Release server for `racker assets fetch` (default: Flatcar's own, per channel) and the
    # OpenPGP public key that signed the release (Flatcar's image signing key).
    release_url: str | None = None
    signing_key: Path | None = None


@dataclass(frozen=True)
class UpdatesConfig:
    """Where `racker update`/`upgrade` find racker's releases (docs/install.md)."""

    # URL of the release index (JSON listing versions, bundle URLs and SHA-256s).
    url: str | None = None
    # OpenPGP public key that signed the bundles; when set, every bundle must carry a valid
    # signature (the index's "signature" URL), checked with gpgv.
    signing_key: Path | None = None


@dataclass(frozen=True)
class ToolConfig:
    """A pinned external tool racker drives (e.g. lokoctl), installed by update/upgrade."""

    version: str
    # Download URL of the executable, or of a .tar.gz holding it (found by the tool's name).
    url: str
    sha256: str


@dataclass(frozen=True)
class Config:
    # The PXE interface; default: found from the OEM files (see docs/oem.md).
    interface: str | None = None
    state_dir: Path | None = None
    oem_dir: Path | None = None
    network: NetworkConfig = field(default_factory=NetworkConfig)
    dhcp: DhcpConfig = field(default_factory=DhcpConfig)
    tftp: TftpConfig = field(default_factory=TftpConfig)
    http: HttpConfig = field(default_factory=HttpConfig)
    boot: BootConfig = field(default_factory=BootConfig)
    bmc: BmcConfig = field(default_factory=BmcConfig)
    install: InstallConfig = field(default_factory=InstallConfig)
    # racker's own releases, and pinned external tools (name: version, url, sha256).
    updates: UpdatesConfig = field(default_factory=UpdatesConfig)
    tools: dict[str, ToolConfig] = field(default_factory=dict)
    # SSH public keys for the installed nodes' "core" user.
    ssh_authorized_keys: list[str] = field(default_factory=list)


def parse_config(text: str, filename: str = "racker.yaml") -> Config:
    """Parse and validate racker.yaml; raise ``ConfigError`` with every problem found."""
    problems: list[Problem] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            [Problem(filename, line, f"not valid YAML: {problem}", "check indentation and quoting")]
        ) from None
    if root is None:
        return Config()
    builder = _Builder(filename, problems)
    config = builder.build(Config, root, "")
    if problems or config is _INVALID:
        raise ConfigError(problems)
    assert isinstance(config, Config)
    return config


def load_config(path: Path | None) -> Config:
    """Read racker.yaml from ``path``; a missing default file means all defaults."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [Problem(str(path), None, "file not found", "pass --config FILE or create it")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(path), None, f"cannot read: {exc}")]) from None
    return parse_config(text, str(path))


class _Builder:
    """Turns composed YAML nodes into the config dataclasses, collecting problems."""

    def __init__(self, filename: str, problems: list[Problem]) -> None:
        self.filename = filename
        self.problems = problems

    def problem(self, node: yaml.Node, key: str, message: str, hint: str | None = None) -> None:
        where = f"{key}: " if key else ""
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        self.problems.append(
            Problem(self.filename, node.start_mark.line + 1, where + message, hint, value)
        )

    def build(self, cls: type[Any], node: yaml.Node, prefix: str) -> Any:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, prefix or "(top level)", "expected a mapping of keys")
            return _INVALID
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in fields:
                known = ", ".join(sorted(fields))
                self.problem(key_node, path, "unknown key", f"known keys here: {known}")
                continue
            converted = self.convert(hints[key], value_node, path)
            if converted is not _INVALID:
                values[key] = converted
        missing = [
            name
            for name, f in fields.items()
            if name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            self.problem(node, prefix, f"missing required key(s): {', '.join(missing)}")
            return _INVALID
        if len(values) < sum(1 for k, _ in node.value if k.value in fields):
            return _INVALID  # a nested problem was already reported
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            self.problem(node, prefix, str(exc))
            return _INVALID

    def convert(self, hint: Any, node: yaml.Node, path: str) -> Any:
        origin = typing.get_origin(hint)
        args = typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            non_none = [a for a in args if a is not type(None)]
            if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
                return None
            if bool in non_none:
                # e.g. bool | Path, bool | list[str]: a YAML boolean is the bool, any other
                # value (a list too) the other type
                is_bool = isinstance(node, yaml.ScalarNode) and node.tag.endswith(":bool")
                non_none = [a for a in non_none if (a is bool) == is_bool] or non_none
            return self.convert(non_none[0], node, path)
        if dataclasses.is_dataclass(hint) and hint not in _SCALAR_TYPES:
            return self.build(hint if isinstance(hint, type) else type(hint), node, path)
        if origin is list:
            if not isinstance(node, yaml.SequenceNode):
                self.problem(node, path, "expected a list")
                return _INVALID
            items = [
                self.convert(args[0], item, f"{path}[{i}]") for i, item in enumerate(node.value)
            ]
            return _INVALID if _INVALID in items else items
        if origin is dict:
            if not isinstance(node, yaml.MappingNode):
                self.problem(node, path, "expected a mapping")
                return _INVALID
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.convert(args[0], key_node, f"{path} key")
                value = self.convert(args[1], value_node, f"{path}.{key_node.value}")
                if key is not _INVALID and value is not _INVALID:
                    out[key] = value
            return out if len(out) == len(node.value) else _INVALID
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, f"expected a single value ({_describe(hint)})")
            return _INVALID
        return self.scalar(hint, node, path)

    def scalar(self, hint: Any, node: yaml.ScalarNode, path: str) -> Any:
        raw = node.value
        tag = node.tag.rsplit(":", 1)[-1]
        try:
            if typing.get_origin(hint) is Literal:
                allowed = typing.get_args(hint)
                if raw not in allowed:
                    raise ValueError(f"must be one of {', '.join(map(str, allowed))}")
                return raw
            if hint is bool:
                if tag != "bool":
                    raise ValueError("expected true or false")
                return yaml.safe_load(raw) is True
            if hint is int:
                if tag != "int" or _sexagesimal(raw):
                    raise ValueError("expected a whole number")
                return int(yaml.safe_load(raw))
            if hint is float:
                if tag not in ("int", "float") or _sexagesimal(raw):
                    raise ValueError("expected a number")
                return float(yaml.safe_load(raw))
            if hint is str:
                if tag == "int" and _sexagesimal(raw) and node.style is None:
                    self.problem(
                        node,
                        path,
                        "YAML 1.1 reads this unquoted MAC/time-like value as a number",
                        f'quote it: "{raw}"',
                    )
                    return _INVALID
                if tag not in ("str", "int", "float"):
                    raise ValueError("expected text")
                return raw
            if hint is Path:
                if tag != "str" or not raw:
                    raise ValueError("expected a path")
                return Path(raw)
            if hint is ipaddress.IPv4Address:
                return ipaddress.IPv4Address(raw)
            if hint is ipaddress.IPv4Network:
                return ipaddress.IPv4Network(raw, strict=False)
            if hint is AddressRange:
                return AddressRange.parse(raw)
        except ValueError as exc:
            self.problem(node, path, str(exc) or f"invalid {_describe(hint)}")
            return _INVALID
        raise TypeError(f"config schema uses an unsupported type {hint!r} at {path}")


_INVALID: Any = object()
_SCALAR_TYPES: tuple[Any, ...] = (AddressRange,)


def _sexagesimal(raw: str) -> bool:
    return ":" in raw


def _describe(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
