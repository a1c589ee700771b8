"""``racker selftest``: real clients against a running ``racker serve`` (layer 5).

Like ``racker.sim``, this package composes clients rather than serving: scapy for the DHCP
exchanges (``dhcp``), tftpy for the first stages (``tftp``), urllib for HTTP (``http_check``),
what is tested worked out from the rack's files (``target``) and the ✓/✗ report (``report``).
scapy and tftpy are imported inside the functions that use them, so ``racker --help`` stays
fast.
"""
