"""DHCPv4 option codes, message types and client architectures (layer 0: stdlib only).

Sources: RFC 2131 (message format), RFC 2132 (options), RFC 4578 (PXE options 93/94/97),
RFC 3004 (user class 77), RFC 3046 (relay agent information 82), RFC 3396 (long options),
and the IANA "Processor Architecture Types" registry for option 93.
"""

from __future__ import annotations

import enum

# BOOTP header (RFC 2131 §2, figure 1): 236 bytes, then the magic cookie (RFC 2131 §3).
HEADER_LEN = 236
MAGIC_COOKIE = b"\x63\x82\x53\x63"
OPTIONS_OFFSET = HEADER_LEN + 4
SNAME_OFFSET, SNAME_LEN = 44, 64
FILE_OFFSET, FILE_LEN = 108, 128
# RFC 1542 §2.1 / RFC 2131 §2: a BOOTP message is at least 300 bytes; old relays drop shorter.
MIN_MESSAGE_LEN = 300
# RFC 2131 §2: every client must accept 576-byte IP datagrams; IP (20) + UDP (8) headers.
MIN_MAX_MESSAGE_SIZE = 576
IP_UDP_OVERHEAD = 28

BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000
SERVER_PORT = 67
CLIENT_PORT = 68


class MessageType(enum.IntEnum):
    """Option 53 values (RFC 2132 §9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(enum.IntEnum):
    """The option codes racker reads or writes."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    HOSTNAME = 12
    BROADCAST = 28
    VENDOR_SPECIFIC = 43
    REQUESTED_ADDRESS = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_ID = 61
    TFTP_SERVER = 66
    BOOTFILE = 67
    USER_CLASS = 77
    RELAY_AGENT = 82
    CLIENT_ARCH = 93
    CLIENT_NDI = 94
    CLIENT_UUID = 97
    IPXE_ENCAP = 175
    END = 255


# Option 52 values (RFC 2132 §9.3): which header fields also carry options.
OVERLOAD_FILE = 1
OVERLOAD_SNAME = 2
OVERLOAD_BOTH = 3


class ClientArch(enum.IntEnum):
    """Option 93 (RFC 4578 §2.1, IANA registry) values racker acts on."""

    X86_BIOS = 0
    NEC_PC98 = 1
    ITANIUM = 2
    DEC_ALPHA = 3
    ARC_X86 = 4
    INTEL_LEAN = 5
    X86_UEFI = 6
    X64_UEFI = 7
    EFI_XSCALE = 8
    EBC = 9  # EFI byte code; historically (and by OVMF builds of the 2010s) sent for x64
    ARM32_UEFI = 10
    ARM64_UEFI = 11
    X86_UEFI_HTTP = 15
    X64_UEFI_HTTP = 16
    EBC_HTTP = 17
    ARM32_UEFI_HTTP = 18
    ARM64_UEFI_HTTP = 19


BIOS_ARCHES = frozenset({ClientArch.X86_BIOS})
UEFI_X86_ARCHES = frozenset({ClientArch.X86_UEFI, ClientArch.X64_UEFI, ClientArch.EBC})
ARM64_ARCHES = frozenset({ClientArch.ARM64_UEFI})
HTTP_ARCHES = frozenset(
    {ClientArch.X86_UEFI_HTTP, ClientArch.X64_UEFI_HTTP, ClientArch.ARM64_UEFI_HTTP}
)

# Vendor class (option 60) prefixes of network-boot firmware (PXE spec 2.1 §2.2.5; UEFI 2.5+
# §24.7 for HTTP boot, which also requires the server to echo "HTTPClient").
PXE_VENDOR_PREFIX = b"PXEClient"
HTTP_VENDOR_PREFIX = b"HTTPClient"
IPXE_USER_CLASS = b"iPXE"
