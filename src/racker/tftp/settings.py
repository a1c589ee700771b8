"""From racker.yaml's ``tftp:`` section to the TFTP server's settings (layer 1: pure).

``tftp_settings`` is the one place that turns the configuration into what ``TftpServer``
takes; the server itself never reads the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from racker.tftp.transfer import TransferLimits, max_blksize_for_mtu

if TYPE_CHECKING:
    from racker.rack.config import TftpConfig


# Each transfer holds FDS_PER_TRANSFER descriptors (its socket, the guard socket for strangers
# on its port, the file); RESERVED_FDS stay for everything else the process needs (HTTP
# connections, the store, BMC sessions), so a flood of requests never starves them.
FDS_PER_TRANSFER = 3
RESERVED_FDS = 256
MAX_TRANSFERS = 400  # a rack's boot storm with room to spare: ~2 per node of a 200-node rack
MAX_TRANSFERS_PER_CLIENT = 8  # OVMF's size probe + download, and retries, with room


@dataclass(frozen=True)
class Capacity:
    """How many transfers run at once: in all, and from one client address."""

    total: int = MAX_TRANSFERS
    per_client: int = MAX_TRANSFERS_PER_CLIENT

    @property
    def strangers(self) -> int:
        """Clients outside nodes.csv share three quarters: the rest is the rack's own."""
        return max(1, self.total * 3 // 4)


@dataclass(frozen=True)
class TftpSettings:
    roots: tuple[Path, ...]  # searched in order
    # Roots a distribution package owns (the iPXE loaders): their symlinks are followed.
    packaged: tuple[Path, ...] = ()
    case_insensitive: bool = False  # firmware written for Windows servers asks in any case
    limits: TransferLimits = field(default_factory=TransferLimits)
    capacity: Capacity = field(default_factory=Capacity)
    # Every transfer on one shared port (``shared.SharedPort``) instead of a port of its own
    # (``session.Session``): fewer wake-ups and descriptors in a boot storm.
    single_port: bool = True


def capacity_for(open_files: int, wanted: Capacity) -> Capacity:
    """``wanted``, with fewer transfers when the process may open only ``open_files``
    descriptors (its soft RLIMIT_NOFILE): ``RESERVED_FDS`` of them stay for the rest."""
    total = min(wanted.total, max(1, (open_files - RESERVED_FDS) // FDS_PER_TRANSFER))
    return Capacity(total, min(wanted.per_client, total))


def tftp_settings(config: TftpConfig, mtu: int) -> TftpSettings:
    """The server's settings; ``mtu`` is the PXE interface's (network.mtu, else the link's)."""
    roots, packaged = search_roots(config)
    return TftpSettings(
        roots=roots,
        packaged=packaged,
        case_insensitive=config.case_insensitive,
        limits=TransferLimits(
            max_blksize=max_blksize_for_mtu(mtu),
            max_windowsize=config.max_windowsize,
            timeout=config.timeout,
            retries=config.retries,
        ),
    )


def search_roots(config: TftpConfig) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """The roots a name is looked up in, in order, and those of them a package owns (the
    TFTP server's, and the HTTP server's for UEFI HTTP Boot)."""
    # The operator's root first, so it can override a packaged loader.
    roots = (config.ipxe_dir,) if config.root is None else (config.root, config.ipxe_dir)
    return roots, (config.ipxe_dir,)
