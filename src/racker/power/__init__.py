"""Power control of the rack's servers through their BMCs (layer 2).

``base`` is the interface callers use, ``drivers.DRIVERS`` picks an implementation by name
(``ipmi``: real BMCs through pyghmi; ``fake``: in memory), ``targets`` turns NODE references
into BMC targets, ``check`` runs ``racker bmc check``, ``console`` builds the SOL command.
"""
