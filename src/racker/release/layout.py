"""Where an installed racker lives, and the atomic swap between its releases (layer 2).

::

    <prefix>/releases/<version>/   one unpacked bundle per kept release (racker, _internal/)
    <prefix>/current  -> releases/<version>    the active release (what the unit runs)
    <prefix>/previous -> releases/<version>    the one `racker rollback` returns to
    <prefix>/tools/<name>/<version>/<name>     pinned external tools (lokoctl)
    <bin_dir>/racker  -> <prefix>/current/racker

Every switch is one ``rename(2)`` of a fresh symlink over the old one, so at any instant —
including a kill -9 halfway through an update — ``current`` names a complete release.
Unpacking happens in ``releases/.part-*`` folders that a later run removes. All links are
relative, so a tree installed under ``--root`` works the same from inside that root.

``root`` lets tests and the container installer write into another tree (``/proc/1/root``
for the host); paths written into the unit file are those seen from inside the root.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from racker.release.bundle import EXECUTABLE, BundleInfo, read_manifest
from racker.release.index import ReleaseError
from racker.release.systemd import UNIT_NAME

DEFAULT_PREFIX = Path("/opt/racker")
UNIT_DIR = Path("/etc/systemd/system")
PARTIAL = ".part-"
# Never removed by uninstall, whatever the prefix: the rack's state and its OEM files.
PROTECTED = (Path("/var/lib/racker"), Path("/usr/share/oem"), Path("/"), Path("/usr"))


def default_bin_dir(root: Path = Path("/")) -> Path:
    """Flatcar's /usr is read-only and its PATH has /opt/bin; elsewhere /usr/local/bin."""
    os_release = root / "etc/os-release"
    with contextlib.suppress(OSError):
        if "ID=flatcar" in os_release.read_text(encoding="utf-8"):
            return Path("/opt/bin")
    return Path("/usr/local/bin")


@dataclass(frozen=True)
class Layout:
    root: Path = Path("/")
    prefix: Path = DEFAULT_PREFIX
    bin_dir: Path = Path("/usr/local/bin")

    def _host(self, path: Path) -> Path:
        return self.root / path.relative_to("/") if path.is_absolute() else self.root / path

    @property
    def home(self) -> Path:
        return self._host(self.prefix)

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def current(self) -> Path:
        return self.home / "current"

    @property
    def previous(self) -> Path:
        return self.home / "previous"

    @property
    def downloads(self) -> Path:
        return self.home / "downloads"

    @property
    def tools(self) -> Path:
        return self.home / "tools"

    @property
    def bin(self) -> Path:
        return self._host(self.bin_dir)

    @property
    def unit_file(self) -> Path:
        return self._host(UNIT_DIR) / UNIT_NAME

    def release_dir(self, version: str) -> Path:
        return self.releases / version

    def inside(self, path: Path) -> Path:
        """``path``, a path under the root, as seen from inside the root."""
        return Path("/") / path.relative_to(self.root)


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One install/update/rollback at a time per prefix (flock; released if the process dies)."""
    layout.home.mkdir(parents=True, exist_ok=True)
    with (layout.home / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReleaseError(
                f"another racker install/update is running on {layout.home}",
                "wait for it to finish",
            ) from None
        yield


def installed(layout: Layout) -> BundleInfo | None:
    """The active release's manifest, or None when racker is not installed there."""
    if not layout.current.exists():
        return None
    return read_manifest(layout.current)


def linked_version(link: Path) -> str | None:
    try:
        return Path(os.readlink(link)).name
    except OSError:
        return None


def new_partial(layout: Layout) -> Path:
    layout.releases.mkdir(parents=True, exist_ok=True)
    return layout.releases / f"{PARTIAL}{uuid.uuid4().hex[:12]}"


def clean_partials(layout: Layout) -> list[Path]:
    """Remove what an interrupted install or update left behind."""
    removed = []
    for folder in (layout.releases, layout.downloads):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.name.startswith(PARTIAL) or path.name.endswith(".part"):
                _remove(path)
                removed.append(path)
    return removed


def adopt(layout: Layout, staged: Path) -> BundleInfo:
    """Move a complete staged bundle folder to ``releases/<version>`` (not yet active)."""
    info = read_manifest(staged)
    dest = layout.release_dir(info.version)
    if dest.exists():
        if linked_version(layout.current) == info.version:
            _remove(staged)  # reinstalling the active release: keep the running files
            return info
        _remove(dest)
    os.replace(staged, dest)
    _fsync_dir(layout.releases)
    return info


def copy_folder(layout: Layout, source: Path) -> BundleInfo:
    """Stage an unpacked bundle folder (what `racker install` runs from) and adopt it."""
    read_manifest(source)
    staged = new_partial(layout)
    shutil.copytree(source, staged, symlinks=True)
    return adopt(layout, staged)


def smoke_test(layout: Layout, version: str, enter: Callable[[], None] | None = None) -> None:
    """Run the new release's ``racker version`` before it becomes active: a bundle that does
    not start on this host (wrong arch, truncated runtime) is refused here.

    ``enter``, when given, is called in the child before it runs the command and moves it into
    the root (the installer image enters the host's mount namespace): the release then runs by
    its path inside the root, on the root's own C library, as its service will."""
    exe = layout.release_dir(version) / EXECUTABLE
    try:
        result = subprocess.run(
            [str(layout.inside(exe) if enter else exe), "version"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"},
            preexec_fn=enter,  # safe here: racker runs no threads while it installs
        )
    except (OSError, subprocess.SubprocessError) as exc:  # also: timed out, enter failed
        raise ReleaseError(f"{exe} does not run on this host: {exc}") from None
    if result.returncode != 0 or version not in result.stdout:
        detail = (result.stderr.strip().splitlines() or [result.stdout.strip()])[-1:]
        raise ReleaseError(
            f"{exe} version failed (exit {result.returncode}): {' '.join(detail)}",
            "the bundle is broken or not for this machine; the installed release is unchanged",
        )


def activate(layout: Layout, version: str) -> str | None:
    """Make ``version`` current (atomically); the old current becomes ``previous``.
    Returns the version that was active before."""
    old = linked_version(layout.current) if layout.current.exists() else None
    if old is not None and old != version:
        symlink_atomic(layout.previous, f"releases/{old}")
    symlink_atomic(layout.current, f"releases/{version}")
    link_command(layout, EXECUTABLE, layout.current / EXECUTABLE)
    return old


def link_command(layout: Layout, name: str, target: Path) -> Path:
    layout.bin.mkdir(parents=True, exist_ok=True)
    link = layout.bin / name
    symlink_atomic(link, os.path.relpath(target, layout.bin))
    return link


def prune(layout: Layout) -> list[str]:
    """Remove releases that are neither current nor previous."""
    keep = {linked_version(layout.current), linked_version(layout.previous)}
    removed = []
    if layout.releases.is_dir():
        for path in layout.releases.iterdir():
            if path.name not in keep and not path.name.startswith(PARTIAL):
                _remove(path)
                removed.append(path.name)
    return removed


def write_unit(layout: Layout) -> Path:
    template = resources.files("racker") / "data" / "systemd" / UNIT_NAME
    text = template.read_text(encoding="utf-8").replace("@PREFIX@", str(layout.prefix))
    layout.unit_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.unit_file.with_name(f".{UNIT_NAME}.new")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, layout.unit_file)
    return layout.unit_file


def uninstall(layout: Layout, tool_names: list[str]) -> list[Path]:
    """Remove the unit, the command links and the prefix; never the state or OEM files."""
    prefix = Path(os.path.normpath(layout.prefix))
    if any(prefix == p or p.is_relative_to(prefix) for p in PROTECTED):
        raise ReleaseError(
            f"refusing to remove prefix {layout.prefix}: it holds racker's state or OEM files",
            "pass the --prefix racker was installed under (default /opt/racker)",
        )
    removed = []
    for link in [layout.bin / EXECUTABLE, *(layout.bin / n for n in tool_names)]:
        if link.is_symlink() and layout.prefix.name in os.readlink(link):
            link.unlink()
            removed.append(link)
    for path in (layout.unit_file, layout.home):
        if path.exists() or path.is_symlink():
            _remove(path)
            removed.append(path)
    return removed


def symlink_atomic(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.new-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)  # rename(2) over the old link: atomic
    _fsync_dir(link.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
