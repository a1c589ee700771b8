from __future__ import annotations

import pytest

from racker.model import Inventory, Node
from racker.power.base import BmcCredentials

PASSWORD = "Sup3r-s3cret-PW"  # noqa: S105 - a test password, searched for in output


def node(index: int, node_type: str = "worker") -> Node:
    return Node(
        line=index + 1,
        index=index,
        primary_mac=f"52:54:00:00:00:{index:02x}",
        bmc_mac=f"52:54:00:00:01:{index:02x}",
        secondary_mac=None,
        node_type=node_type,
    )


@pytest.fixture
def inventory() -> Inventory:
    nodes = (node(1, "mgmt"), node(2, "controller"), node(3), node(4))
    return Inventory("nodes.csv", nodes, management=nodes[0])


@pytest.fixture
def credentials() -> BmcCredentials:
    return BmcCredentials("admin", PASSWORD)
