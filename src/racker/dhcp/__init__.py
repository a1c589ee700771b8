"""racker's DHCPv4 responder for the PXE network.

``options`` (L0 tables) → ``codec`` (L1, bytes ↔ Message) → ``core`` (L1, sans-I/O decisions,
with ``leases``, ``boot``, ``reply`` and ``events``; ``memo`` remembers what it worked out;
``settings`` from racker.yaml) → ``server`` (L3, AF_PACKET and UDP transport; ``frames``
builds and parses the Ethernet/IPv4/UDP around the DHCP payload).
"""
