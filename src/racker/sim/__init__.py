"""The real-firmware rack simulator (layer 5, beside the app; runs subprocesses, needs root).

QEMU VMs (SeaBIOS + iPXE ROM, or OVMF's own PXE) behind OpenIPMI ``ipmi_sim`` BMCs, in network
namespaces: see ``spec`` (what a sim is made of), ``rack`` (up/down/status), ``vm`` (the QEMU
command line and the per-node power supervisor) and ``guest`` (the cached guest kernel and
installer initramfs built by ``scripts/build-sim-guest``).
"""
