"""The bundle archive and the install layout, on fake bundles (no PyInstaller)."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path

import pytest

from racker.release import layout as lay
from racker.release.bundle import (
    BundleError,
    BundleInfo,
    archive_name,
    pack_bundle,
    sha256_file,
    unpack_bundle,
)
from racker.release.index import ReleaseError
from racker.release.systemd import Systemctl, notify


def fake_folder(tmp: Path, version: str) -> Path:
    folder = tmp / f"src-{version}"
    (folder / "_internal").mkdir(parents=True)
    exe = folder / "racker"
    exe.write_text(f'#!/bin/sh\necho "racker {version}"\n')
    exe.chmod(0o755)
    (folder / "_internal" / "lib.txt").write_text("runtime")
    (folder / "_internal" / "link").symlink_to("lib.txt")
    return folder


def test_packing_is_reproducible(tmp_path: Path) -> None:
    info = BundleInfo("1.2.3", "amd64", 1)
    first = pack_bundle(fake_folder(tmp_path, "1.2.3"), info, tmp_path / "a", 1700000000)
    second = pack_bundle(fake_folder(tmp_path / "again", "1.2.3"), info, tmp_path / "b", 1700000000)
    assert first.name == archive_name("1.2.3", "amd64") == "racker-1.2.3-linux-amd64.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    sums = first.with_name(first.name + ".sha256").read_text()
    assert sums == f"{sha256_file(first)}  {first.name}\n"


def test_unpack_round_trip(tmp_path: Path) -> None:
    info = BundleInfo("1.2.3", "amd64", 4)
    archive = pack_bundle(fake_folder(tmp_path, "1.2.3"), info, tmp_path, 0)
    assert unpack_bundle(archive, tmp_path / "out") == info
    assert os.readlink(tmp_path / "out" / "racker" / "_internal" / "link") == "lib.txt"


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("racker/../../etc/passwd", tarfile.REGTYPE, ""),
        ("/etc/passwd", tarfile.REGTYPE, ""),
        ("elsewhere/file", tarfile.REGTYPE, ""),
        ("racker/escape", tarfile.SYMTYPE, "../../etc/shadow"),
        ("racker/abs", tarfile.SYMTYPE, "/etc/shadow"),
        ("racker/dev", tarfile.CHRTYPE, ""),
    ],
)
def test_unsafe_archives_are_refused(tmp_path: Path, name: str, kind: bytes, link: str) -> None:
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        entry = tarfile.TarInfo(name)
        entry.type = kind
        entry.linkname = link
        tar.addfile(entry, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
    with pytest.raises(BundleError, match="unsafe"):
        unpack_bundle(archive, tmp_path / "out")
    assert not (tmp_path / "etc").exists()


def test_activate_keeps_previous_and_links_are_relative(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path / "root", Path("/opt/racker"), Path("/usr/local/bin"))
    for version in ("1.0.0", "1.0.1"):
        info = BundleInfo(version, "amd64", 1)
        folder = fake_folder(tmp_path, version)
        (folder / "BUNDLE.json").write_text(info.to_json())
        assert lay.copy_folder(layout, folder) == info
        lay.activate(layout, version)
    assert os.readlink(layout.current) == "releases/1.0.1"
    assert os.readlink(layout.previous) == "releases/1.0.0"
    link = layout.bin / "racker"
    assert os.readlink(link) == "../../../opt/racker/current/racker"
    assert link.resolve() == (layout.releases / "1.0.1" / "racker").resolve()
    assert lay.prune(layout) == []


def test_uninstall_never_touches_state_or_oem(tmp_path: Path) -> None:
    for prefix in ("/var/lib/racker", "/usr/share/oem", "/", "/var/lib", "/usr"):
        with pytest.raises(ReleaseError, match="refusing"):
            lay.uninstall(lay.Layout(tmp_path, Path(prefix)), [])


def test_flatcar_gets_opt_bin(tmp_path: Path) -> None:
    assert lay.default_bin_dir(tmp_path) == Path("/usr/local/bin")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text(
        'NAME="Flatcar Container Linux by Kinvolk"\nID=flatcar\n'
    )
    assert lay.default_bin_dir(tmp_path) == Path("/opt/bin")


def test_unit_runs_current_and_reloads_with_hup(tmp_path: Path) -> None:
    layout = lay.Layout(tmp_path, Path("/srv/racker"))
    text = lay.write_unit(layout).read_text()
    assert "Type=notify" in text
    assert "ExecStart=/srv/racker/current/racker serve" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text
    assert "Restart=on-failure" in text
    assert layout.unit_file == tmp_path / "etc/systemd/system/racker.service"


def test_sd_notify_sends_one_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        assert notify("READY=1", {"NOTIFY_SOCKET": path})
        assert sock.recv(100) == b"READY=1"
    assert not notify("READY=1", {})  # not under systemd: nothing to do
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_sd_notify_abstract_socket() -> None:
    name = f"racker-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("READY=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"READY=1"


def test_systemctl_is_a_no_op_without_systemd(tmp_path: Path) -> None:
    systemctl = Systemctl(tmp_path)  # no run/systemd/system in this root
    assert not systemctl.available()
    assert not systemctl.run("restart", "racker.service")
