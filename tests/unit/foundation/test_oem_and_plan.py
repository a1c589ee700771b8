"""OEM directory reading (credentials, management row, PXE MAC) and the address plan."""

from __future__ import annotations

import ipaddress
import os
import shutil
from pathlib import Path

import pytest

from racker.errors import ConfigError
from racker.model import AddressRange
from racker.rack.addressing import plan_addresses
from racker.rack.config import Config, DhcpConfig, NetworkConfig
from racker.rack.oem import Secret, read_oem, write_credentials

EXAMPLE = Path(__file__).parents[3] / "fixtures" / "oem" / "example"


@pytest.fixture
def oem(tmp_path: Path) -> Path:
    directory = tmp_path / "oem"
    shutil.copytree(EXAMPLE, directory)
    write_credentials(directory, "admin", Secret("s3cret-pw"))
    return directory


def test_example_rack_is_valid(oem: Path) -> None:
    data = read_oem(oem)
    assert data.problems == ()
    assert data.credentials is not None
    assert data.credentials.user == "admin"
    assert data.credentials.password.reveal() == "s3cret-pw"
    assert "s3cret" not in repr(data) and "s3cret" not in str(data.credentials)
    assert data.inventory.management is not None
    assert data.inventory.management.primary_mac == "52:54:00:99:00:01"
    assert len(data.inventory.provisionable) == 5
    assert data.inventory.types() == {"red": 2, "purple": 3}


def test_credentials_are_written_0600(oem: Path) -> None:
    for name in ("ipmi_user", "ipmi_password"):
        assert os.stat(oem / name).st_mode & 0o777 == 0o600


def test_management_row_found_by_local_mac_without_pxe_file(oem: Path) -> None:
    (oem / "pxe_interface").unlink()
    assert read_oem(oem).inventory.management is None
    data = read_oem(oem, local_macs=frozenset({"52:54:00:99:00:30"}))
    assert data.inventory.management is not None
    assert data.inventory.management.line == 6


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: (d / "ipmi_password").chmod(0o644), "is readable by others (mode 0644)"),
        (lambda d: (d / "ipmi_user").write_text("\n"), "is empty"),
        (lambda d: (d / "ipmi_password").unlink(), "file is missing"),
        (lambda d: (d / "ipmi_user").write_text("a\nb\n"), "has more than one line"),
        (lambda d: (d / "pxe_interface").write_text("eth0\n"), "not a MAC address"),
        (lambda d: (d / "nodes.csv").write_bytes(b"\xff\xfe"), "file is not UTF-8 text"),
        (
            lambda d: (d / "pxe_interface").write_text("52:54:00:99:99:99\n"),
            "no row is the management node",
        ),
    ],
)
def test_bad_oem_files(oem: Path, setup: object, message: str) -> None:
    setup(oem)  # type: ignore[operator]
    problems = read_oem(oem).problems
    assert any(p.message.startswith(message) for p in problems), problems
    assert all(p.hint for p in problems if p.message.startswith(message))


def test_plan_defaults_come_from_the_interface() -> None:
    plan = plan_addresses(Config(), (ipaddress.IPv4Interface("10.99.0.1/24"),))
    assert plan.server == ipaddress.IPv4Address("10.99.0.1")
    assert str(plan.nodes) == "10.99.0.64-10.99.0.127"
    assert str(plan.bmcs) == "10.99.0.128-10.99.0.191"
    assert str(plan.pool) == "10.99.0.192-10.99.0.254"


def test_plan_from_config_without_interface_address() -> None:
    config = Config(
        network=NetworkConfig(
            subnet=ipaddress.IPv4Network("172.16.0.0/16"),
            server=ipaddress.IPv4Address("172.16.0.1"),
        )
    )
    plan = plan_addresses(config)
    assert str(plan.nodes) == "172.16.64.0-172.16.127.255"


@pytest.mark.parametrize(
    ("subnet", "server", "addresses", "expected"),
    [
        # a fresh management node: no address, nothing configured
        (None, None, (), ("172.24.213.0/24", "172.24.213.1")),
        # configured subnet, the NIC has no address yet: its first host, or network.server
        ("10.7.0.0/24", None, (), ("10.7.0.0/24", "10.7.0.1")),
        ("10.7.0.0/24", "10.7.0.5", (), ("10.7.0.0/24", "10.7.0.5")),
        # the NIC's address in the configured subnet is racker's, among others outside it
        ("10.7.0.0/24", None, ("192.168.9.2/24", "10.7.0.9/24"), ("10.7.0.0/24", "10.7.0.9")),
        # no configured subnet: the NIC's own (today's behaviour)
        (None, None, ("10.99.0.1/24",), ("10.99.0.0/24", "10.99.0.1")),
    ],
)
def test_plan_subnet_and_server(
    subnet: str | None, server: str | None, addresses: tuple[str, ...], expected: tuple[str, str]
) -> None:
    network = NetworkConfig(
        subnet=ipaddress.IPv4Network(subnet) if subnet else None,
        server=ipaddress.IPv4Address(server) if server else None,
    )
    plan = plan_addresses(
        Config(network=network), tuple(ipaddress.IPv4Interface(a) for a in addresses)
    )
    assert (str(plan.subnet), str(plan.server)) == expected


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        (
            Config(network=NetworkConfig(subnet=ipaddress.IPv4Network("172.24.213.0/24"))),
            "the PXE interface has 10.99.0.1/24, outside network.subnet 172.24.213.0/24",
        ),
        (
            Config(network=NetworkConfig(nodes=AddressRange.parse("10.99.0.1-10.99.0.9"))),
            "contains racker's own address",
        ),
        (
            Config(network=NetworkConfig(bmcs=AddressRange.parse("10.99.0.100-10.99.0.130"))),
            "network.nodes 10.99.0.64-10.99.0.127 overlaps network.bmcs",
        ),
        (
            Config(dhcp=DhcpConfig(pool=AddressRange.parse("10.98.0.1-10.98.0.9"))),
            "dhcp.pool 10.98.0.1-10.98.0.9 is not inside",
        ),
        (Config(network=NetworkConfig(subnet=ipaddress.IPv4Network("10.99.0.0/30"))), "too small"),
    ],
)
def test_bad_plans(config: Config, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan_addresses(config, (ipaddress.IPv4Interface("10.99.0.1/24"),))
    assert any(fragment in str(p) for p in info.value.problems), info.value.problems
