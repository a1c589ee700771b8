"""Which network-boot client is asking, and which boot file it gets (layer 1: pure).

The client's architectures come from option 93 (RFC 4578 §2.1; a client may list several, in
order of preference) and, when that is missing, from the ``Arch:xxxxx`` field of the PXE /
HTTP-boot vendor class (option 60). iPXE announces itself with option 175 (its encapsulated
feature list) or user class "iPXE" (option 77; iPXE sends the raw 4 bytes, RFC 3004 wants a
length prefix, both are accepted).

Chainload loop: iPXE's ROM and the ``undionly.kpxe`` it would load send byte-identical options
(see fixtures/dhcp, capture 5), so no server can tell the two stages apart. racker therefore
never hands a loader to iPXE: any iPXE, first stage or chainloaded, gets the HTTP script URL.
A loader is offered only to firmware that is not iPXE, and what it loads is iPXE, which then
gets the script — so the chain always ends after at most one loader.

UEFI HTTP Boot (``boot.uefi_http``): firmware that tries PXE before HTTP (OVMF, many servers)
takes the TFTP path as soon as a PXE offer names a file. For the machines set to boot by HTTP,
a UEFI ``PXEClient`` request is therefore answered with an address but no boot file, so the
firmware moves on to its HTTP boot entry, whose ``HTTPClient`` request gets the loader's URL.
"""

from __future__ import annotations

from dataclasses import dataclass

from racker.dhcp.options import (
    ARM64_ARCHES,
    BIOS_ARCHES,
    HTTP_ARCHES,
    HTTP_VENDOR_PREFIX,
    IPXE_USER_CLASS,
    PXE_VENDOR_PREFIX,
    UEFI_X86_ARCHES,
    ClientArch,
    Opt,
)

# Plain ints on the hot path (an IntEnum member lookup is an attribute lookup and more).
_CLIENT_ARCH = Opt.CLIENT_ARCH.value
_IPXE_ENCAP = Opt.IPXE_ENCAP.value
_USER_CLASS = Opt.USER_CLASS.value
_VENDOR_CLASS = Opt.VENDOR_CLASS.value

_ARCH_MARK = b":Arch:"


@dataclass(frozen=True, slots=True)
class BootSettings:
    server: str  # dotted address the client fetches from (TFTP and HTTP)
    http_port: int
    bios_loader: str = "undionly.kpxe"
    uefi_loader: str = "ipxe.efi"
    arm64_loader: str | None = None
    script: str = "boot.ipxe"
    # UEFI HTTP Boot only (no TFTP loader for UEFI PXE): every client (True), or these MACs.
    uefi_http: bool = False
    uefi_http_macs: frozenset[str] = frozenset()

    def url(self, path: str) -> str:
        return f"http://{self.server}:{self.http_port}/{path}"


@dataclass(frozen=True, slots=True)
class ClientInfo:
    arches: tuple[int, ...]  # option 93 values, else the one from option 60, else ()
    vendor_class: bytes  # option 60
    ipxe: bool
    kind: str  # "bios", "uefi", "uefi-http", "ipxe", "os" (see racker.events.DhcpEvent)

    @property
    def arch(self) -> int | None:
        return self.arches[0] if self.arches else None


@dataclass(frozen=True, slots=True)
class BootChoice:
    file: str  # file name (TFTP) or URL (HTTP)
    tftp: bool  # a TFTP loader: set siaddr and option 66
    http_client: bool  # UEFI HTTP boot: echo option 60 "HTTPClient" (UEFI spec §24.7)


PLAIN_CLIENT = ClientInfo((), b"", False, "os")


def classify(options: dict[int, bytes]) -> ClientInfo:
    vendor = options.get(_VENDOR_CLASS, b"")
    raw_arch = options.get(_CLIENT_ARCH)
    ipxe = _IPXE_ENCAP in options or _is_ipxe_user_class(options.get(_USER_CLASS))
    if raw_arch is None and not vendor and not ipxe:
        return PLAIN_CLIENT  # the common case (OS, BMC, load generator): decide fast
    arches: tuple[int, ...] = ()
    if raw_arch:
        arches = tuple((raw_arch[i] << 8) | raw_arch[i + 1] for i in range(0, len(raw_arch) - 1, 2))
    if not arches:
        arches = _arch_from_vendor_class(vendor)
    if ipxe:
        kind = "ipxe"
    elif vendor.startswith(HTTP_VENDOR_PREFIX) or any(a in HTTP_ARCHES for a in arches):
        kind = "uefi-http"
    elif arches and arches[0] in BIOS_ARCHES:
        kind = "bios"
    elif arches:
        kind = "uefi"
    else:
        kind = "os"
    return ClientInfo(arches, vendor, ipxe, kind)


def choose_boot(client: ClientInfo, settings: BootSettings, mac: str = "") -> BootChoice | None:
    """The boot file for ``client`` (from ``mac``), or None (no boot file: an OS, a BMC, an
    unknown arch, UEFI PXE on a machine set to boot by HTTP)."""
    if client.ipxe:
        return BootChoice(settings.url(settings.script), tftp=False, http_client=False)
    http = client.vendor_class.startswith(HTTP_VENDOR_PREFIX)
    uefi_tftp = not (settings.uefi_http or mac in settings.uefi_http_macs)
    for arch in client.arches:  # the client's order of preference
        if arch in BIOS_ARCHES and not http:
            return BootChoice(settings.bios_loader, tftp=True, http_client=False)
        if (arch in UEFI_X86_ARCHES or arch in ARM64_ARCHES) and not http and not uefi_tftp:
            return None  # so that it falls through to its HTTP boot entry
        if arch in UEFI_X86_ARCHES and not http:
            return BootChoice(settings.uefi_loader, tftp=True, http_client=False)
        if arch in ARM64_ARCHES and settings.arm64_loader and not http:
            return BootChoice(settings.arm64_loader, tftp=True, http_client=False)
        if arch in (ClientArch.X86_UEFI_HTTP, ClientArch.X64_UEFI_HTTP):
            return BootChoice(settings.url(settings.uefi_loader), tftp=False, http_client=True)
        if arch == ClientArch.ARM64_UEFI_HTTP and settings.arm64_loader:
            return BootChoice(settings.url(settings.arm64_loader), tftp=False, http_client=True)
    return None


def _arch_from_vendor_class(vendor: bytes) -> tuple[int, ...]:
    # "PXEClient:Arch:00007:UNDI:003000" / "HTTPClient:Arch:00016:..." (PXE spec 2.1, UEFI §24)
    if not (vendor.startswith(PXE_VENDOR_PREFIX) or vendor.startswith(HTTP_VENDOR_PREFIX)):
        return ()
    at = vendor.find(_ARCH_MARK)
    if at < 0:
        return ()
    digits = vendor[at + len(_ARCH_MARK) : at + len(_ARCH_MARK) + 5]
    if len(digits) != 5 or not digits.isdigit():
        return ()
    return (int(digits),)


def _is_ipxe_user_class(value: bytes | None) -> bool:
    if not value:
        return False
    if value == IPXE_USER_CLASS:
        return True  # iPXE's own (non-RFC 3004) raw form
    # RFC 3004 §4: a list of length-prefixed user classes.
    pos = 0
    while pos < len(value):
        length = value[pos]
        item = value[pos + 1 : pos + 1 + length]
        if length == 0 or len(item) != length:
            return False
        if item == IPXE_USER_CLASS:
            return True
        pos += 1 + length
    return False
