"""The rack's description: racker.yaml, the OEM files (nodes.csv, credentials), the address
plan, the persistent address allocation and this machine's interfaces — read, checked and
combined into one ``Rack`` (``loading``)."""
