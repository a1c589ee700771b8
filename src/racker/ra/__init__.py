"""IPv6 router advertisements on the PXE network, so iPXE does not wait for one."""
