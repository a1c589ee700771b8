"""Router advertisement encoding and solicitation checks (RFC 4861 sections 4.2, 6.1.1)."""

from __future__ import annotations

import pytest

from racker.ra.server import ALL_NODES, is_router_solicitation, reply_address, router_advertisement

RS = bytes([133, 0, 0, 0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("data", "hop_limit", "valid"),
    [
        (RS, 255, True),
        (RS, None, True),  # kernel did not report the hop limit
        (RS + bytes([1, 1, 0x52, 0x54, 0, 0, 0, 1]), 255, True),  # with a source lladdr option
        (RS, 64, False),  # routed from elsewhere: must be 255 (section 6.1.1)
        (bytes([133, 1, 0, 0, 0, 0, 0, 0]), 255, False),  # code must be 0
        (RS[:7], 255, False),  # ICMP length < 8
        (bytes([135, 0, 0, 0, 0, 0, 0, 0]), 255, False),  # a neighbour solicitation
        (b"", 255, False),
    ],
)
def test_solicitation_checks(data: bytes, hop_limit: int | None, valid: bool) -> None:
    assert is_router_solicitation(data, hop_limit) is valid


def test_advertisement_configures_nothing() -> None:
    ra = router_advertisement("52:54:00:aa:00:fe")
    assert ra.hex() == (
        "86000000"  # type 134, code 0, checksum (kernel fills it in)
        "0000"  # cur hop limit 0 (unspecified), M=0 O=0 (no DHCPv6)
        "0000"  # router lifetime 0: not a default router
        "00000000"  # reachable time
        "00000000"  # retrans timer
        "0101525400aa00fe"  # source link-layer address option
    )


def test_advertisement_without_mac_has_no_options() -> None:
    assert len(router_advertisement(None)) == 16


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("fe80::5054:ff:feaa:1%eth0", "fe80::5054:ff:feaa:1"),
        ("fe80::1", "fe80::1"),
        ("::", ALL_NODES),  # a host without an address yet: all-nodes (section 6.2.6)
    ],
)
def test_reply_address(source: str, target: str) -> None:
    assert reply_address(source) == target
