"""Power control of the rack's servers through their BMCs (layer 2).

``base`` is the interface callers use, ``drivers.DRIVERS`` picks an implementation by name
(``ipmi``: pyghmi, ``ipmi_codec`` and ``pyghmi_client``; ``redfish``: sushy, ``redfish_codec``
and ``sushy_client``; ``auto``: either, per BMC; ``fake``: in memory), ``workers`` runs the
blocking clients within deadlines, ``targets`` turns NODE references into BMC targets,
``check`` runs ``racker bmc check``, ``console`` builds the SOL command.
"""
