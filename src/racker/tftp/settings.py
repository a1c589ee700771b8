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


@dataclass(frozen=True)
class TftpSettings:
    roots: tuple[Path, ...]  # searched in order
    # Roots a distribution package owns (the iPXE loaders): their symlinks are followed.
    packaged: tuple[Path, ...] = ()
    case_insensitive: bool = False  # firmware written for Windows servers asks in any case
    limits: TransferLimits = field(default_factory=TransferLimits)


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
