"""The operator's log lines for DHCP events (INFO, `racker -v serve`), like dnsmasq's."""

from __future__ import annotations

import logging

import pytest

from racker.app.hub import EventHub
from racker.dhcp.events import Exchange, log_line, stamped
from racker.dhcp.options import MessageType
from racker.events import DhcpEvent, DiscoveryEvent

MAC = "52:54:00:aa:00:01"


def event(
    mtype: MessageType,
    direction: str,
    address: str | None = None,
    boot_file: str | None = None,
    reason: str = "",
    client_kind: str = "uefi",
) -> DhcpEvent:
    exchange = Exchange(MAC, mtype.value, 7, client_kind, address)
    if direction == "in":
        assert boot_file is None  # a client's message names none
        return stamped(exchange.received(), 0.0, 1, reason)
    return stamped(exchange.sent(mtype.value, address, boot_file), 0.0, 1, reason)


@pytest.mark.parametrize(
    ("ev", "line"),
    [
        (
            event(MessageType.OFFER, "out", address="10.99.0.65", boot_file="ipxe.efi"),
            f"DHCP OFFER 10.99.0.65 to {MAC} (uefi), boot ipxe.efi",
        ),
        (
            event(MessageType.ACK, "out", address="10.99.0.65", client_kind="os"),
            f"DHCP ACK 10.99.0.65 to {MAC} (os), no boot file",
        ),
        (
            event(MessageType.NAK, "out", reason="10.99.0.9 is not this client's address"),
            f"DHCP NAK to {MAC} (uefi): 10.99.0.9 is not this client's address",
        ),
        (
            event(MessageType.DISCOVER, "in", reason="unknown client ignored"),
            f"DHCP DISCOVER from {MAC} (uefi) not answered: unknown client ignored",
        ),
        (event(MessageType.REQUEST, "in"), None),  # answered: its ACK says it
        # DhcpServer logs every DECLINE at WARNING (Outcome.warning): not twice.
        (event(MessageType.DECLINE, "in", reason="address in use by another host"), None),
        (
            DiscoveryEvent("discovery", MAC, 0.0, vendor_class="PXEClient:Arch:00007"),
            f"DHCP: {MAC} is not in nodes.csv and asks for an address, vendor class "
            "'PXEClient:Arch:00007' (listed once per MAC; dhcp.unknown_clients decides whether"
            " it gets one)",
        ),
    ],
)
def test_log_lines(ev, line) -> None:  # type: ignore[no-untyped-def]
    assert log_line(ev) == line


def test_the_hub_logs_dhcp_at_info_only(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub(None)
    offer = event(MessageType.OFFER, "out", address="10.99.0.65", boot_file="ipxe.efi")
    with caplog.at_level(logging.WARNING):
        hub.publish(offer)
    assert not caplog.records
    with caplog.at_level(logging.INFO):
        hub.publish(offer)
        hub.publish(event(MessageType.REQUEST, "in"))
    assert [r.getMessage() for r in caplog.records] == [
        f"DHCP OFFER 10.99.0.65 to {MAC} (uefi), boot ipxe.efi"
    ]
    assert caplog.records[0].name == "racker.dhcp"
