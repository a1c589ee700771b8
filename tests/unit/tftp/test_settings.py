"""racker.yaml's ``tftp:`` section to the server's settings (``tftp_settings``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from racker.rack.config import TftpConfig
from racker.tftp.settings import TftpSettings, tftp_settings
from racker.tftp.transfer import TransferLimits

IPXE = Path("/usr/lib/ipxe")

ROWS = [
    ("defaults: the packaged loaders only", TftpConfig(), 1500,
     TftpSettings((IPXE,), (IPXE,), False, TransferLimits(1468, 64, 1.0, 5))),
    ("the operator's root comes first, so it can override a loader",
     TftpConfig(root=Path("/srv/tftp"), ipxe_dir=Path("/opt/ipxe")), 1500,
     TftpSettings((Path("/srv/tftp"), Path("/opt/ipxe")), (Path("/opt/ipxe"),), False,
                  TransferLimits(1468, 64, 1.0, 5))),
    ("every tunable is carried over; blksize follows the MTU",
     TftpConfig(case_insensitive=True, max_windowsize=16, timeout=0.5, retries=9), 9000,
     TftpSettings((IPXE,), (IPXE,), True, TransferLimits(8968, 16, 0.5, 9))),
]  # fmt: skip


@pytest.mark.parametrize(("case", "config", "mtu", "expected"), ROWS, ids=[r[0] for r in ROWS])
def test_tftp_settings(case: str, config: TftpConfig, mtu: int, expected: TftpSettings) -> None:
    assert tftp_settings(config, mtu) == expected, case
