"""The management node's PXE NIC as a systemd-networkd ``.network`` file (pure).

``racker install`` writes it so that racker's address is on the PXE NIC at boot, before racker
starts. On Flatcar, networkd's shipped ``zz-default.network`` runs a DHCP client on every NIC;
networkd uses the first file (in lexical order) that matches a link, so this one sorts before
it and turns DHCP off: the management node never asks its own DHCP server for an address.
"""

from __future__ import annotations

import ipaddress
from pathlib import PurePosixPath

NETWORK_DIR = PurePosixPath("/etc/systemd/network")
NETWORK_FILE = NETWORK_DIR / "50-racker-pxe.network"


def pxe_network_file(mac: str, address: ipaddress.IPv4Interface) -> str:
    """The ``.network`` file for the PXE NIC ``mac`` with racker's ``address``."""
    return (
        "# Written by `racker install` (removed by `racker uninstall`): racker's address on the\n"
        "# rack-internal PXE network. It sorts before Flatcar's zz-default.network, so no DHCP\n"
        "# client runs here: racker is this network's DHCP server.\n"
        "[Match]\n"
        f"MACAddress={mac}\n"
        "\n"
        "[Network]\n"
        f"Address={address}\n"
        "DHCP=no\n"
        "IPv6AcceptRA=no\n"
        "LinkLocalAddressing=ipv6\n"
    )
