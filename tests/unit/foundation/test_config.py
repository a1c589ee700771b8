"""racker.yaml: good files load with the right values; each bad file names its key and line."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from racker.errors import ConfigError
from racker.model import AddressRange
from racker.rack.config import Config, load_config, parse_config

FIXTURES = Path(__file__).parents[3] / "fixtures" / "config"
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def test_empty_file_is_all_defaults() -> None:
    assert parse_config((FIXTURES / "good" / "empty.yaml").read_text()) == Config()
    assert parse_config("") == Config()


def test_defaults_are_documented_values() -> None:
    config = Config()
    assert config.http.port == 8080
    assert config.dhcp.unknown_clients == "ignore"
    assert config.tftp.ipxe_dir == Path("/usr/lib/ipxe")
    assert config.boot.bios_loader == "undionly.kpxe"
    assert config.boot.uefi_loader == "ipxe.efi"


def test_full_file() -> None:
    config = load_config(FIXTURES / "good" / "full.yaml")
    assert config.interface == "pxe0"
    assert config.network.subnet == ipaddress.IPv4Network("10.99.0.0/24")
    assert config.network.nodes == AddressRange.parse("10.99.0.10-10.99.0.99")
    assert config.network.dns == [ipaddress.IPv4Address("10.99.0.1")]
    assert config.dhcp.unknown_clients == "pool"
    assert config.dhcp.relays[0].subnet == ipaddress.IPv4Network("10.98.0.0/24")
    assert config.dhcp.relays[0].gateway == ipaddress.IPv4Address("10.98.0.1")
    assert config.tftp.root == Path("/srv/tftp")
    assert config.tftp.case_insensitive is True
    assert config.http.port == 8081
    assert config.bmc.addresses == {
        "52:54:00:99:01:10": "127.0.0.11",
        "red-990010": "127.0.0.12:6230",
    }
    assert config.bmc.timeout == 5.0
    assert config.boot.console == ["ttyS1,115200n8"]
    assert len(config.ssh_authorized_keys) == 1


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_config_names_key_and_line(path: Path) -> None:
    expected = []
    for line in path.with_suffix(".expect").read_text().splitlines():
        number, _, message = line.partition(": ")
        expected.append((int(number), message))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    got = [(p.line, p.message) for p in info.value.problems]
    assert len(got) == len(expected), got
    for (line, message), (want_line, want_message) in zip(got, expected, strict=True):
        assert line == want_line, (line, message)
        assert message.startswith(want_message), (message, want_message)
    assert all(p.file == str(path) for p in info.value.problems)


def test_missing_config_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_none_path_means_defaults() -> None:
    assert load_config(None) == Config()


@pytest.mark.parametrize(
    ("yaml_text", "fragment"),
    [
        ("http: 8080", "http: expected a mapping of keys"),
        ("ssh_authorized_keys: ssh-rsa AAA", "ssh_authorized_keys: expected a list"),
        ("network: {dns: [1.2.3]}", "network.dns[0]"),
        ("tftp: {root: [a]}", "tftp.root: expected a single value"),
        ("bmc: {timeout: fast}", "bmc.timeout: expected a number"),
        ("network: {nodes: 10.0.0.9-10.0.0.1}", "network.nodes: range end"),
        ("dhcp: {cache_threshold: 1}", "dhcp: cache_threshold 1.0 must be at least 0 (off)"),
    ],
)
def test_type_errors(yaml_text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text)
    assert any(fragment in str(p) for p in info.value.problems), info.value.problems
