"""`racker install`, `update`, `upgrade` and `rollback` (layer 2): the steps, in an order that
leaves the old version running whenever one fails.

An update or upgrade: fetch the index -> download the bundle (SHA-256, and a signature when
``updates.signing_key`` is set) -> unpack into ``releases/.part-*`` -> check its manifest ->
run its ``racker version`` -> fetch the pinned tools -> swap ``current`` (one rename) ->
restart the service if it was running -> if it does not come back, swap back and restart the
old one. Nothing before the swap touches the active release, so a failure (or a kill -9) up
to that point leaves everything as it was; the next run removes the leftovers.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from racker.rack.config import ToolConfig
from racker.release import layout as lay
from racker.release.bundle import TOP, BundleInfo, machine_arch, read_manifest, unpack_bundle
from racker.release.fetch import download, fetch_text, verify_signature
from racker.release.index import (
    Release,
    ReleaseError,
    ReleaseIndex,
    VersionCheck,
    check_versions,
    parse_index,
)
from racker.release.systemd import UNIT_NAME, Systemctl

log = logging.getLogger("racker.release")
Say = Callable[[str], None]


@dataclass(frozen=True)
class Installer:
    layout: lay.Layout
    systemctl: Systemctl
    say: Say
    signing_key: Path | None = None
    tools: Mapping[str, ToolConfig] | None = None
    state_dir: Path | None = None
    arch: str = ""
    # Moves a child process into the root before it runs a new release (see lay.smoke_test);
    # set by the installer image, whose root is the host's, seen through /proc/1/root.
    enter_root: Callable[[], None] | None = None

    @property
    def machine(self) -> str:
        return self.arch or machine_arch()

    # -- install / uninstall ------------------------------------------------------------

    def install_folder(self, source: Path, start: bool = False) -> BundleInfo:
        """`racker install`: copy the running bundle in, activate it, write the unit."""
        lay.clean_partials(self.layout)
        info = lay.copy_folder(self.layout, source)
        return self._finish_install(info, start)

    def install_archive(self, archive: Path, start: bool = False) -> BundleInfo:
        lay.clean_partials(self.layout)
        info = self._stage_archive(archive, None)
        return self._finish_install(info, start)

    def _finish_install(self, info: BundleInfo, start: bool) -> BundleInfo:
        lay.smoke_test(self.layout, info.version, self.enter_root)
        self.install_tools()
        was_active = self.systemctl.is_active()
        old = lay.activate(self.layout, info.version)
        unit = lay.write_unit(self.layout)
        self.say(f"installed racker {info.version} in {self.layout.release_dir(info.version)}")
        self.say(f"command: {self.layout.bin / 'racker'}; unit: {unit}")
        if self.systemctl.run("daemon-reload") and self.systemctl.run("enable", UNIT_NAME):
            if was_active and old != info.version:
                self._restart_or_roll_back(old, info.version)
            elif start:
                self.systemctl.run("start", UNIT_NAME)
        elif not self.systemctl.available():
            self.say("systemd is not running here: enable the unit with systemctl later")
        return info

    def uninstall(self) -> list[Path]:
        if self.systemctl.available():
            self.systemctl.run("disable", "--now", UNIT_NAME)
        removed = lay.uninstall(self.layout, sorted(self.tools or {}))
        self.systemctl.run("daemon-reload")
        return removed

    # -- updates ---------------------------------------------------------------------------

    def check(self, index: ReleaseIndex) -> VersionCheck:
        return check_versions(index, self.current().version, self.machine)

    def current(self) -> BundleInfo:
        info = lay.installed(self.layout)
        if info is None:
            raise ReleaseError(
                f"racker is not installed under {self.layout.home}",
                "run 'racker install' from the bundle first (or pass the right --prefix/--root)",
            )
        return info

    def apply(self, release: Release) -> str:
        """Install ``release`` and make it active; on any failure the old one stays."""
        current = self.current()
        ref = release.bundles.get(self.machine)
        if ref is None:
            raise ReleaseError(f"racker {release.version} has no bundle for {self.machine}")
        if release.state_schema < current.state_schema:
            raise ReleaseError(
                f"racker {release.version} reads state schema {release.state_schema}, but the "
                f"state database is at {current.state_schema}",
                "a downgrade across a schema change is not possible; use 'racker rollback'",
            )
        lay.clean_partials(self.layout)
        name = Path(ref.url).name or f"racker-{release.version}.tar.gz"
        archive = self.layout.downloads / name
        self.say(f"downloading {ref.url}")
        download(ref.url, archive, ref.sha256)
        try:
            if self.signing_key is not None:
                if ref.signature is None:
                    raise ReleaseError(
                        f"racker {release.version}: the index lists no signature, and "
                        "updates.signing_key requires one",
                        "ask the release server for signed bundles",
                    )
                sig = download(ref.signature, archive.with_name(name + ".sig"), None)
                verify_signature(archive, sig, self.signing_key)
            info = self._stage_archive(archive, release.version)
        finally:
            for leftover in (archive, archive.with_name(name + ".sig")):
                leftover.unlink(missing_ok=True)
        lay.smoke_test(self.layout, info.version, self.enter_root)
        self.install_tools()
        if release.state_schema > current.state_schema:
            self._backup_state(current.version)
        was_active = self.systemctl.is_active()
        old = lay.activate(self.layout, info.version)
        self.say(f"racker {info.version} is now current (previous: {old})")
        if was_active:
            self._restart_or_roll_back(old, info.version)
        lay.prune(self.layout)
        return info.version

    def rollback(self) -> str:
        target = lay.linked_version(self.layout.previous)
        if target is None or not self.layout.release_dir(target).is_dir():
            raise ReleaseError(
                f"no previous release to roll back to under {self.layout.home}",
                "rollback returns to the release that the last update/upgrade replaced",
            )
        info = read_manifest(self.layout.release_dir(target))
        current = self.current()
        if info.state_schema < current.state_schema and self.state_dir is not None:
            backup = self._backup_path(target)
            self.say(
                f"racker {target} reads state schema {info.state_schema}; the database is at "
                f"{current.state_schema}. Restore {backup} to use racker {target}'s state."
            )
        was_active = self.systemctl.is_active()
        old = lay.activate(self.layout, target)
        self.say(f"racker {target} is current again (was {old})")
        if was_active:
            self._restart_or_roll_back(old, target)
        return target

    # -- steps -----------------------------------------------------------------------------

    def _stage_archive(self, archive: Path, expect: str | None) -> BundleInfo:
        part = lay.new_partial(self.layout)
        try:
            info = unpack_bundle(archive, part)
            if expect is not None and info.version != expect:
                raise ReleaseError(
                    f"{archive.name} holds racker {info.version}, the index says {expect}"
                )
            if info.arch != self.machine:
                raise ReleaseError(f"{archive.name} is for {info.arch}, this is {self.machine}")
            return lay.adopt(self.layout, part / TOP)
        finally:
            if part.exists():
                shutil.rmtree(part)

    def _restart_or_roll_back(self, old: str | None, new: str) -> None:
        if self.systemctl.run("restart", UNIT_NAME):
            self.say(f"restarted {UNIT_NAME}")
            return
        if old is None:
            raise ReleaseError(f"{UNIT_NAME} did not start with racker {new}")
        lay.activate(self.layout, old)
        self.systemctl.run("restart", UNIT_NAME)
        raise ReleaseError(
            f"{UNIT_NAME} did not start with racker {new}; rolled back to {old}",
            "see 'journalctl -u racker' for why",
        )

    def install_tools(self) -> None:
        """Fetch every pinned tool not already present (checksum verified), then link it."""
        for name, tool in sorted((self.tools or {}).items()):
            folder = self.layout.tools / name / tool.version
            exe = folder / name
            if not exe.is_file():
                self.say(f"downloading {name} {tool.version}")
                part = lay.new_partial(self.layout)
                try:
                    fetched = download(tool.url, part / "download", tool.sha256)
                    _extract_tool(fetched, name, part / name)
                    folder.parent.mkdir(parents=True, exist_ok=True)
                    shutil.rmtree(folder, ignore_errors=True)
                    (part / "download").unlink()
                    part.replace(folder)
                finally:
                    shutil.rmtree(part, ignore_errors=True)
            lay.link_command(self.layout, name, exe)

    def _backup_path(self, version: str) -> Path:
        assert self.state_dir is not None
        return self.state_dir / f"racker.db.before-{version}"

    def _backup_state(self, version: str) -> None:
        """A consistent copy of the state database (SQLite's online backup) before a schema
        migration, so a rollback can return to the old schema."""
        if self.state_dir is None or not (self.state_dir / "racker.db").exists():
            return
        backup = self._backup_path(version)
        with (
            contextlib.closing(sqlite3.connect(self.state_dir / "racker.db")) as src,
            contextlib.closing(sqlite3.connect(backup)) as dst,
        ):
            src.backup(dst)
        self.say(f"state database copied to {backup} (schema migration ahead)")


def load_index(url: str) -> ReleaseIndex:
    return parse_index(fetch_text(url), url)


def _extract_tool(downloaded: Path, name: str, dest: Path) -> None:
    """The tool is the file itself, or the member called ``name`` of a .tar.gz."""
    if tarfile.is_tarfile(downloaded):
        with tarfile.open(downloaded) as tar:
            member = next(
                (m for m in tar.getmembers() if m.isfile() and Path(m.name).name == name), None
            )
            source = tar.extractfile(member) if member is not None else None
            if source is None:
                raise ReleaseError(f"{downloaded.name}: no file named {name} in the archive")
            with source, dest.open("wb") as out:
                shutil.copyfileobj(source, out)
    else:
        shutil.copyfile(downloaded, dest)
    dest.chmod(0o755)
