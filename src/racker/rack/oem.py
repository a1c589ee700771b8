"""The OEM directory the rack vendor writes (layer 2: reads files, checks their modes).

``nodes.csv`` (see racker.rack.inventory), ``ipmi_user`` and ``ipmi_password`` (one line each),
and optionally ``pxe_interface`` (the MAC of the management node's PXE NIC).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from racker.errors import Problem
from racker.model import Inventory, Node, parse_mac
from racker.rack.inventory import parse_nodes_csv

NODES_CSV = "nodes.csv"
IPMI_USER = "ipmi_user"
IPMI_PASSWORD = "ipmi_password"  # noqa: S105 - a file name, not a password
PXE_INTERFACE = "pxe_interface"


class Secret:
    """A string that never shows itself in repr, str, logs or exception text."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Credentials:
    user: str
    password: Secret


@dataclass(frozen=True)
class OemData:
    directory: Path
    inventory: Inventory
    credentials: Credentials | None
    problems: tuple[Problem, ...]
    has_secondary: bool


def read_oem(directory: Path, local_macs: frozenset[str] = frozenset()) -> OemData:
    """Read and validate the OEM directory; problems are returned, not raised."""
    problems: list[Problem] = []
    csv_path = directory / NODES_CSV
    nodes: tuple[Node, ...] = ()
    has_secondary = False
    text = _read_text(csv_path, problems, "write it with 'racker factory init'")
    if text is not None:
        parsed = parse_nodes_csv(text, str(csv_path))
        nodes, has_secondary = parsed.nodes, parsed.has_secondary
        problems.extend(parsed.problems)

    credentials = _read_credentials(directory, problems)

    pxe_mac: str | None = None
    pxe_path = directory / PXE_INTERFACE
    if os.path.lexists(pxe_path):  # optional file; unreadable is reported, absent is fine
        raw = _read_text(pxe_path, problems, None)
        if raw is not None:
            pxe_mac = parse_mac(raw.strip())
            if pxe_mac is None:
                problems.append(
                    Problem(
                        str(pxe_path),
                        1,
                        "not a MAC address",
                        "write the MAC of the management node's PXE (internal) NIC",
                        raw.strip(),
                    )
                )

    management = _find_management(nodes, local_macs, pxe_mac)
    inventory = Inventory(str(csv_path), nodes, management, pxe_mac)
    if nodes and management is None:
        problems.append(
            Problem(
                str(csv_path),
                None,
                "no row is the management node: none of its MACs belongs to this machine"
                + (f" or matches {PXE_INTERFACE}" if pxe_mac else ""),
                f"add a row for this machine, or write its PXE NIC's MAC to {pxe_path}",
            )
        )
    return OemData(directory, inventory, credentials, tuple(problems), has_secondary)


def _find_management(
    nodes: tuple[Node, ...], local_macs: frozenset[str], pxe_mac: str | None
) -> Node | None:
    for node in nodes:
        if pxe_mac is not None and pxe_mac in node.macs:
            return node
    for node in nodes:
        if local_macs.intersection(node.macs):
            return node
    return None


def _read_text(path: Path, problems: list[Problem], hint: str | None) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(str(path), None, "file is missing", hint))
    except UnicodeDecodeError:
        problems.append(Problem(str(path), None, "file is not UTF-8 text", hint))
    except PermissionError:
        problems.append(
            Problem(str(path), None, "cannot read: permission denied", "run racker as root")
        )
    except OSError as exc:
        problems.append(Problem(str(path), None, f"cannot read: {exc.strerror}", hint))
    return None


def _read_credentials(directory: Path, problems: list[Problem]) -> Credentials | None:
    values: dict[str, str] = {}
    for name in (IPMI_USER, IPMI_PASSWORD):
        path = directory / name
        text = _read_text(path, problems, "write it with 'racker factory init'")
        if text is None:
            continue
        lines = text.splitlines()
        value = lines[0].strip() if lines else ""
        if not value:
            problems.append(
                Problem(str(path), 1, "is empty", "write the BMC credential on the first line")
            )
            continue
        if len([line for line in lines if line.strip()]) > 1:
            problems.append(
                Problem(str(path), 2, "has more than one line", "keep only the credential")
            )
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            problems.append(
                Problem(
                    str(path),
                    None,
                    f"is readable by others (mode {stat.S_IMODE(mode):04o})",
                    f"chmod 600 {path}",
                )
            )
        values[name] = value
    if IPMI_USER in values and IPMI_PASSWORD in values:
        return Credentials(values[IPMI_USER], Secret(values[IPMI_PASSWORD]))
    return None


NODES_TEMPLATE_4 = """\
Primary MAC address, BMC MAC address, Node Type, Comments
# One row per server. The row of the management node itself is listed too (never provisioned).
# 00:11:22:33:44:00, 00:11:22:33:44:01, red, management node
# 00:11:22:33:44:10, 00:11:22:33:44:11, red, controller
"""

NODES_TEMPLATE_5 = """\
Primary MAC address, BMC MAC address, Secondary MAC address, Node Type, Comments
# One row per server. The row of the management node itself is listed too (never provisioned);
# its secondary MAC names the PXE interface.
# 00:11:22:33:44:00, 00:11:22:33:44:01, 00:11:22:33:44:02, red, management node
# 00:11:22:33:44:10, 00:11:22:33:44:11, 00:11:22:33:44:12, red, controller
"""


def write_file(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` atomically (temp file + rename); the file never exists with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed or the caller widened it
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_nodes_template(directory: Path, secondary: bool) -> Path:
    path = directory / NODES_CSV
    write_file(path, NODES_TEMPLATE_5 if secondary else NODES_TEMPLATE_4)
    return path


def write_credentials(directory: Path, user: str, password: Secret) -> None:
    write_file(directory / IPMI_USER, user + "\n", 0o600)
    write_file(directory / IPMI_PASSWORD, password.reveal() + "\n", 0o600)


def write_pxe_interface(directory: Path, mac: str) -> None:
    write_file(directory / PXE_INTERFACE, mac + "\n")
