"""The bundle archive: ``racker-<version>-linux-<arch>.tar.gz`` and its ``.sha256`` (layer 2).

Layout inside the archive: one folder ``racker/`` holding the frozen ``racker`` executable, its
``_internal/`` runtime (PyInstaller one-folder mode) and ``BUNDLE.json`` (version, arch, state
schema). Packing is reproducible: sorted entries, one fixed mtime, owner root, gzip without a
timestamp, so the same folder always gives the same bytes and the same SHA-256.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from racker.errors import RackerError

TOP = "racker"
MANIFEST = "BUNDLE.json"
EXECUTABLE = "racker"

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


class BundleError(RackerError):
    """A bundle archive is malformed, unsafe or not for this machine."""

    exit_code = 1


@dataclass(frozen=True)
class BundleInfo:
    version: str
    arch: str
    state_schema: int

    def to_json(self) -> str:
        data = {"version": self.version, "arch": self.arch, "state_schema": self.state_schema}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def machine_arch(machine: str | None = None) -> str:
    """Flatcar's name for this machine's architecture (amd64, arm64)."""
    raw = machine or platform.machine()
    return _ARCHES.get(raw.lower(), raw.lower())


def archive_name(version: str, arch: str) -> str:
    return f"racker-{version}-linux-{arch}.tar.gz"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_bundle(folder: Path, info: BundleInfo, out_dir: Path, mtime: int) -> Path:
    """Pack ``folder`` (PyInstaller's dist/racker) into the archive plus its .sha256 file."""
    if not (folder / EXECUTABLE).is_file():
        raise BundleError(f"{folder}: no {EXECUTABLE} executable", "build the bundle first")
    (folder / MANIFEST).write_text(info.to_json(), encoding="utf-8")
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / archive_name(info.version, info.arch)
    tmp = archive.with_name(archive.name + ".part")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in [folder, *sorted(folder.rglob("*"))]:
            rel = PurePosixPath(TOP, *path.relative_to(folder).parts)
            entry = tar.gettarinfo(str(path), arcname=str(rel))
            entry.mtime = mtime
            entry.uid = entry.gid = 0
            entry.uname = entry.gname = ""
            entry.pax_headers = {}
            if entry.isfile():
                with path.open("rb") as f:
                    tar.addfile(entry, f)
            else:
                tar.addfile(entry)
    os.replace(tmp, archive)
    checksum = archive.with_name(archive.name + ".sha256")
    checksum.write_text(f"{sha256_file(archive)}  {archive.name}\n", encoding="utf-8")
    return archive


def unpack_bundle(archive: Path, dest: Path) -> BundleInfo:
    """Unpack into ``dest`` (which must not exist yet) and return its manifest.

    Refuses absolute paths, ``..``, device files and links that leave the bundle, so a
    hostile archive cannot write outside ``dest``."""
    dest.mkdir(parents=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                _check_member(member, archive)
            tar.extractall(dest, filter="tar")
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise BundleError(
            f"{archive}: not a readable bundle archive ({exc})", "download it again"
        ) from None
    return read_manifest(dest / TOP)


def read_manifest(folder: Path) -> BundleInfo:
    path = folder / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        info = BundleInfo(str(data["version"]), str(data["arch"]), int(data["state_schema"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BundleError(f"{path}: missing or invalid bundle manifest ({exc})") from None
    if not (folder / EXECUTABLE).is_file():
        raise BundleError(f"{folder}: the bundle has no {EXECUTABLE} executable")
    return info


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    parts = PurePosixPath(member.name).parts
    bad = (
        not parts
        or parts[0] != TOP
        or member.name.startswith("/")
        or ".." in parts
        or not (member.isfile() or member.isdir() or member.issym())
    )
    if member.issym():
        target = PurePosixPath(member.name).parent / member.linkname
        bad = bad or member.linkname.startswith("/") or _escapes(target)
    if bad:
        raise BundleError(
            f"{archive}: refusing unsafe entry {member.name!r}", "the archive is not a bundle"
        )


def _escapes(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 1:
            return True
    return False
