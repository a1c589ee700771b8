"""TFTP for the PXE network (RFC 1350, 2347, 2348, 2349, 7440), read-only.

- ``packets``: the wire codec (layer 1).
- ``transfer``: one read transfer as a pure state machine: options, windows, retransmissions.
- ``admission``: whether a request is served, and with which options, or why not (layer 1).
- ``settings``: the server's settings, from racker.yaml's ``tftp:`` (layer 1).
- ``files``: which file a requested name means, refusals, shared readers (layer 2).
- ``server`` and ``session``: the asyncio shell: port 69 and one socket per transfer (layer 3).
"""
