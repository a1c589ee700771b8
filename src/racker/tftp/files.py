"""Which file a TFTP filename means, and reading it (layer 2: a file-source adapter).

Names arrive as PXE firmware and boot loaders spell them: DOS-style backslashes, a leading '/',
'./' segments, sometimes in the wrong case. ``split_filename`` normalises those and refuses the
names that can only be attempts to leave the root ('..', NUL, control characters). ``FileRoots``
then looks the name up in each root in turn (the operator's tftp.root first, then the iPXE
loaders directory, so a site may override a packaged loader) and refuses anything whose real
path, after symlinks, lies outside that root, and anything that is not a regular file
(directories, device files, FIFOs: opening some of those blocks or has side effects).

Open files are shared: every transfer of one file reads through the same descriptor with
``os.pread`` (no file position, so no locking), and blocks are read on demand. A hundred clients
fetching one 50 MiB image hold one descriptor and the kernel's page cache, not a hundred copies.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from racker.tftp.admission import FileRefused
from racker.tftp.packets import MAX_FILENAME, ErrorCode
from racker.tftp.settings import search_roots
from racker.tftp.transfer import BlockSource, BytesSource, netascii_encode

if TYPE_CHECKING:
    from racker.rack.config import TftpConfig

log = logging.getLogger("racker.tftp")

# netascii needs the converted size up front (tsize, the last block), so the file is converted
# in memory; boot files are binary and sent as octet, so a large netascii request is refused.
NETASCII_LIMIT = 16 * 1024 * 1024


def split_filename(filename: str) -> tuple[str, ...]:
    """The path components of a requested name, or ``FileRefused`` (pure)."""
    if len(filename.encode("utf-8", errors="surrogatepass")) > MAX_FILENAME:
        raise FileRefused(ErrorCode.ACCESS_VIOLATION, f"filename longer than {MAX_FILENAME} bytes")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in filename):
        raise FileRefused(ErrorCode.ACCESS_VIOLATION, f"control character in filename {filename!r}")
    parts = tuple(p for p in filename.replace("\\", "/").split("/") if p not in ("", "."))
    if ".." in parts:
        raise FileRefused(ErrorCode.ACCESS_VIOLATION, f"'..' in filename {filename!r}")
    if not parts:
        raise FileRefused(ErrorCode.FILE_NOT_FOUND, f"no file named in {filename!r}")
    return parts


class FileSource:
    """A regular file read with ``pread`` on one shared descriptor."""

    def __init__(self, fd: int, size: int, key: tuple[int, ...]) -> None:
        self.fd = fd
        self._size = size
        self.key = key
        self.users = 0

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self.fd, length, offset)


@dataclass
class OpenedFile:
    """A resolved file for one transfer; ``close()`` it when the transfer ends."""

    path: Path
    source: BlockSource
    _release: FileRoots | None = field(default=None, repr=False)

    def close(self) -> None:
        if self._release is not None and isinstance(self.source, FileSource):
            self._release.release(self.source)
        self._release = None


class FileRoots:
    """Read-only lookup of TFTP names under a list of root directories."""

    def __init__(
        self,
        roots: Sequence[Path],
        case_insensitive: bool = False,
        packaged: Sequence[Path] = (),
    ) -> None:
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.case_insensitive = case_insensitive
        # Roots that a distribution package owns (the iPXE loaders): their symlinks may point
        # elsewhere — Debian's /usr/lib/ipxe/ipxe.efi is a link to /boot/ipxe.efi — and are
        # followed, since only root can change them. Operator roots stay confined.
        self.packaged = {Path(os.path.realpath(r)) for r in packaged}
        self._open: dict[tuple[int, ...], FileSource] = {}
        for root in self.roots:
            if not root.is_dir():
                log.warning("TFTP root %s is not a directory; nothing is served from it", root)

    def resolve(self, filename: str) -> Path:
        """The real path of the regular file ``filename`` names, or ``FileRefused``."""
        parts = split_filename(filename)
        for root in self.roots:
            candidate = self._lookup(root, parts)
            if candidate is None:
                continue
            real = Path(os.path.realpath(candidate))
            if not real.is_relative_to(root) and root not in self.packaged:
                raise FileRefused(
                    ErrorCode.ACCESS_VIOLATION,
                    f"{filename!r} leads out of {root} (to {real})",
                    "a symlink under the TFTP root points outside it",
                )
            try:
                mode = os.stat(real).st_mode
            except OSError:
                continue  # a dangling symlink: try the next root
            if not stat.S_ISREG(mode):
                raise FileRefused(ErrorCode.ACCESS_VIOLATION, f"{filename!r} is not a regular file")
            return real
        raise FileRefused(ErrorCode.FILE_NOT_FOUND, f"{filename!r} not found")

    def _lookup(self, root: Path, parts: tuple[str, ...]) -> Path | None:
        path = root.joinpath(*parts)
        if os.path.lexists(path):
            return path
        if not self.case_insensitive:
            return None
        # Firmware written for Windows servers asks for PXELINUX.0 or Boot\X64\... in any case.
        path = root
        for part in parts:
            exact = path / part
            if os.path.lexists(exact):
                path = exact
                continue
            try:
                names = sorted(os.listdir(path))
            except OSError:
                return None
            wanted = part.casefold()
            match = next((n for n in names if n.casefold() == wanted), None)
            if match is None:
                return None
            path = path / match
        return path

    def open(self, filename: str, mode: str = "octet") -> OpenedFile:
        """Resolve and open ``filename`` for one transfer (``mode`` as in the request)."""
        path = self.resolve(filename)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise FileRefused(
                ErrorCode.ACCESS_VIOLATION, f"cannot open {filename!r}: {exc.strerror}"
            ) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # replaced between resolve() and open()
            os.close(fd)
            raise FileRefused(ErrorCode.ACCESS_VIOLATION, f"{filename!r} is not a regular file")
        if mode == "netascii":
            try:
                if st.st_size > NETASCII_LIMIT:
                    raise FileRefused(
                        ErrorCode.NOT_DEFINED,
                        f"{filename!r} is too large for netascii ({st.st_size} bytes)",
                        "request it in octet (binary) mode",
                    )
                raw = os.pread(fd, st.st_size, 0)
            finally:
                os.close(fd)
            return OpenedFile(path, BytesSource(netascii_encode(raw)))
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        source = self._open.get(key)
        if source is None:
            source = self._open[key] = FileSource(fd, st.st_size, key)
        else:
            os.close(fd)
        source.users += 1
        return OpenedFile(path, source, self)

    def release(self, source: FileSource) -> None:
        source.users -= 1
        if source.users <= 0 and self._open.get(source.key) is source:
            del self._open[source.key]
            os.close(source.fd)

    @property
    def open_files(self) -> int:
        return len(self._open)


def configured_roots(config: TftpConfig) -> FileRoots:
    """The lookup racker.yaml's ``tftp:`` section describes (the TFTP server's; the HTTP server
    serves the same files to UEFI HTTP Boot)."""
    roots, packaged = search_roots(config)
    return FileRoots(roots, config.case_insensitive, packaged)
