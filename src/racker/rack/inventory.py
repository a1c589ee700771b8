"""nodes.csv parsing and validation (layer 1: pure; text in, nodes and problems out).

Two formats, told apart by the header line::

    Primary MAC address, BMC MAC address, Node Type, Comments
    Primary MAC address, BMC MAC address, Secondary MAC address, Node Type, Comments

Whitespace around fields is ignored, MACs are case-insensitive and ':' or '-' separated (and
normalised here, once), text after '#' is a comment, blank lines are skipped. The Comments
column may be left out, and may itself contain commas. Every problem is collected, so the
vendor fixes the file in one pass.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from racker.errors import Problem
from racker.model import Node, looks_like_mac, parse_mac

HEADER_4 = ("primary mac address", "bmc mac address", "node type", "comments")
HEADER_5 = (
    "primary mac address",
    "bmc mac address",
    "secondary mac address",
    "node type",
    "comments",
)
HEADER_HINT = (
    "the first line must be 'Primary MAC address, BMC MAC address, Node Type, Comments' "
    "or 'Primary MAC address, BMC MAC address, Secondary MAC address, Node Type, Comments'"
)


@dataclass(frozen=True)
class ParsedNodes:
    nodes: tuple[Node, ...]
    problems: tuple[Problem, ...]
    has_secondary: bool


def _fields(line: str) -> list[str]:
    text = line.split("#", 1)[0]
    row = next(csv.reader([text], skipinitialspace=True), [])
    return [field.strip() for field in row]


def parse_nodes_csv(text: str, filename: str = "nodes.csv") -> ParsedNodes:
    problems: list[Problem] = []
    nodes: list[Node] = []
    lines = text.splitlines()
    header_line = 0
    header: tuple[str, ...] | None = None
    for number, line in enumerate(lines, start=1):
        fields = _fields(line)
        if not any(fields):
            continue
        header_line = number
        normalised = tuple(" ".join(f.lower().split()) for f in fields)
        if normalised in (HEADER_4, HEADER_5):
            header = normalised
        else:
            problems.append(Problem(filename, number, "unrecognised header", HEADER_HINT, line))
        break
    if header is None:
        if header_line == 0:
            problems.append(Problem(filename, None, "file has no header and no rows", HEADER_HINT))
        return ParsedNodes((), tuple(problems), False)

    columns = len(header)
    has_secondary = columns == 5
    seen: dict[str, tuple[int, str]] = {}  # mac -> (line, column name)
    for number, line in enumerate(lines[header_line:], start=header_line + 1):
        fields = _fields(line)
        if not any(fields):
            continue
        if len(fields) < columns - 1:
            problems.append(
                Problem(
                    filename,
                    number,
                    f"expected {columns} columns ({', '.join(header)}), found {len(fields)}",
                    "separate the columns with commas; only Comments may be left out",
                    line.strip(),
                )
            )
            continue
        # The Comments column is last and may contain commas: give it everything left over.
        fields = [*fields[: columns - 1], ", ".join(fields[columns - 1 :])]
        names = ["Primary MAC address", "BMC MAC address"]
        if has_secondary:
            names.append("Secondary MAC address")
        macs: list[str | None] = []
        duplicate = False
        for name, raw in zip(names, fields, strict=False):
            mac = parse_mac(raw)
            if mac is None:
                problems.append(
                    Problem(
                        filename,
                        number,
                        f"{name} is not a MAC address",
                        "write six hex pairs separated by ':' or '-', e.g. 00:11:22:33:44:55",
                        raw,
                    )
                )
            elif mac in seen:
                duplicate = True
                first_line, first_column = seen[mac]
                problems.append(
                    Problem(
                        filename,
                        number,
                        f"{name} {mac} already appears on line {first_line} ({first_column})",
                        "every NIC and BMC MAC must be listed once",
                    )
                )
            else:
                seen[mac] = (number, name)
            macs.append(mac)
        node_type = fields[len(names)]
        if not node_type:
            problems.append(
                Problem(filename, number, "Node Type is empty", "name the server model, e.g. red")
            )
        elif looks_like_mac(node_type):
            problems.append(
                Problem(
                    filename,
                    number,
                    "Node Type looks like a MAC address",
                    "are the columns in the order of the header?",
                    node_type,
                )
            )
        if None in macs or duplicate or not node_type or looks_like_mac(node_type):
            continue
        primary, bmc = macs[0], macs[1]
        assert primary is not None
        assert bmc is not None
        nodes.append(
            Node(
                line=number,
                index=len(nodes) + 1,
                primary_mac=primary,
                bmc_mac=bmc,
                secondary_mac=macs[2] if has_secondary else None,
                node_type=node_type,
                comment=fields[-1],
            )
        )
    if not nodes and not problems:
        problems.append(
            Problem(filename, None, "no servers listed", "add one row per server after the header")
        )
    return ParsedNodes(tuple(nodes), tuple(problems), has_secondary)
