"""racker's own releases: the self-contained bundle, its installation under a prefix,
and updates from a release index.

``index`` is the pure part (layer 1: which release is an update, which an upgrade); the rest are
adapters (layer 2) that download, verify, unpack and swap files, and talk to systemd.
"""
