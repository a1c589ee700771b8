"""How `racker status` words a node's last event."""

from __future__ import annotations

from typing import Any

import pytest

from racker.bootstrap.status import _describe_event


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            {"source": "dhcp", "kind": "ack", "message": "ACK", "address": "10.99.0.65"},
            "dhcp ack 10.99.0.65",
        ),
        ({"source": "dhcp", "kind": "discover", "message": "DISCOVER"}, "dhcp discover"),
        (
            {
                "source": "dhcp",
                "kind": "discover",
                "message": "DISCOVER",
                "direction": "in",
                "reason": "reserved address 10.99.0.65 was declined (in use by another host)",
            },
            "dhcp discover: reserved address 10.99.0.65 was declined (in use by another host)",
        ),
        (  # an answer's reason (a NAK's) is for the log; the status shows what was sent
            {"source": "dhcp", "kind": "nak", "message": "NAK", "direction": "out", "reason": "x"},
            "dhcp nak",
        ),
        ({"source": "http", "kind": "request", "path": "/ipxe"}, "http request /ipxe"),
        (
            {"source": "tftp", "kind": "transfer-finished", "file": "ipxe.efi"},
            "tftp transfer-finished ipxe.efi",
        ),
        ({"source": "phone-home", "kind": "installed", "message": ""}, "phone-home installed"),
        ({"source": "bootstrap", "kind": "state", "old": "", "new": "pending"}, "- -> pending"),
    ],
)
def test_describe_event(event: dict[str, Any], text: str) -> None:
    assert _describe_event(event) == text
