"""nodes.csv: every good format parses; every bad fixture gives exactly its expected errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.model import looks_like_mac, parse_mac
from racker.rack.inventory import parse_nodes_csv

FIXTURES = Path(__file__).parents[3] / "fixtures"
BAD = sorted((FIXTURES / "inventory" / "bad").glob("*.csv"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("00:11:22:33:44:55", "00:11:22:33:44:55"),
        ("00-11-22-33-44-55", "00:11:22:33:44:55"),
        (" AA:BB:CC:DD:EE:FF ", "aa:bb:cc:dd:ee:ff"),
        ("aa:bb-cc:dd:ee:ff", None),  # mixed separators
        ("aa:bb:cc:dd:ee", None),
        ("aa:bb:cc:dd:ee:fg", None),
        ("aabbccddeeff", None),
        ("", None),
    ],
)
def test_parse_mac(text: str, expected: str | None) -> None:
    assert parse_mac(text) == expected


def test_bare_hex_looks_like_a_mac_for_swapped_column_detection() -> None:
    assert looks_like_mac("aabbccddeeff")
    assert not looks_like_mac("red")


def test_four_column_example_from_the_issue() -> None:
    text = (FIXTURES / "oem" / "example4" / "nodes.csv").read_text()
    parsed = parse_nodes_csv(text)
    assert parsed.problems == ()
    assert not parsed.has_secondary
    assert [(n.line, n.index, n.primary_mac, n.bmc_mac, n.node_type) for n in parsed.nodes] == [
        (2, 1, "00:11:22:33:44:00", "00:11:22:33:44:01", "red"),
        (3, 2, "00:11:22:33:44:10", "00:11:22:33:44:11", "red"),
        (4, 3, "00:11:22:33:44:20", "00:11:22:33:44:21", "purple"),
    ]
    assert parsed.nodes[0].comment == "mgmt node"  # text after '#' dropped


def test_five_column_format_whitespace_case_dashes_and_comma_in_comment() -> None:
    text = (
        "  primary MAC address ,BMC MAC ADDRESS, Secondary MAC address,Node Type,  Comments\n"
        "\n"
        "00-11-22-33-44-AA ,00:11:22:33:44:ab,   00:11:22:33:44:AC ,blue,rack 1, slot 2 # x\n"
        "00:11:22:33:44:ba, 00:11:22:33:44:bb, 00:11:22:33:44:bc, blue\n"
    )
    parsed = parse_nodes_csv(text)
    assert parsed.problems == ()
    assert parsed.has_secondary
    first, second = parsed.nodes
    assert first.macs == ("00:11:22:33:44:aa", "00:11:22:33:44:ab", "00:11:22:33:44:ac")
    assert first.comment == "rack 1, slot 2"
    assert first.line == 3
    assert second.comment == ""
    assert second.index == 2


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_file_reports_its_expected_errors(path: Path) -> None:
    expected = []
    for line in path.with_suffix(".expect").read_text().splitlines():
        number, _, message = line.partition(": ")
        expected.append((int(number) or None, message))
    parsed = parse_nodes_csv(path.read_text(), str(path))
    got = [(p.line, p.message) for p in parsed.problems]
    assert len(got) == len(expected), got
    for (line, message), (want_line, want_message) in zip(got, expected, strict=True):
        assert line == want_line
        assert message.startswith(want_message), (message, want_message)
    for problem in parsed.problems:
        assert problem.file == str(path)
        assert problem.hint  # every problem tells how to fix it


def test_valid_rows_survive_next_to_bad_ones() -> None:
    text = (FIXTURES / "inventory" / "bad" / "duplicate-mac.csv").read_text()
    parsed = parse_nodes_csv(text)
    assert [n.line for n in parsed.nodes] == [2, 5]


def test_hostname_is_stable_and_derived_from_type_and_mac() -> None:
    parsed = parse_nodes_csv((FIXTURES / "oem" / "example4" / "nodes.csv").read_text())
    assert parsed.nodes[1].hostname == "red-334410"
