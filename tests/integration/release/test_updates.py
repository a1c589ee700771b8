"""`racker install/update/upgrade/rollback/uninstall` against a local HTTP release server with
three releases: a compatible update, an incompatible upgrade, and a corrupted one (issue 9)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.integration.release.conftest import ARCH, Rig


def install_base(rig: Rig) -> None:
    archive = rig.www / f"racker-1.2.0-linux-{ARCH}.tar.gz"
    out = rig.racker("install", "--bundle", str(archive)).stdout
    assert "installed racker 1.2.0" in out
    assert rig.installed_command() == "racker 1.2.0"


def current(rig: Rig) -> str:
    return os.readlink(rig.home / "current")


def test_install_writes_unit_links_and_enables(rig: Rig) -> None:
    install_base(rig)
    unit = (rig.root / "etc/systemd/system/racker.service").read_text()
    assert "ExecStart=/opt/racker/current/racker serve" in unit
    assert rig.systemctl_log == ["is-active --quiet racker.service", "daemon-reload",
                                 "enable racker.service"]  # fmt: skip
    # The pinned tool came along, verified, and is on the same PATH directory.
    tool = rig.root / "usr/local/bin/lokoctl"
    assert tool.resolve() == (rig.home / "tools/lokoctl/0.9.0/lokoctl").resolve()


def test_update_then_upgrade_then_rollback(rig: Rig) -> None:
    install_base(rig)
    state = rig.root / "var/lib/racker"
    state.mkdir(parents=True)
    sqlite3.connect(state / "racker.db").execute("CREATE TABLE t (x)").connection.commit()
    (rig.tmp / "active").touch()  # the service runs: updates restart it

    check = rig.racker("version", "--check").stdout
    assert "racker 1.2.0 (installed in" in check
    assert "update available: 1.2.3" in check
    assert "upgrade available: 2.0.0" in check

    out = rig.racker("update").stdout
    assert "racker 1.2.3 is now current (previous: 1.2.0)" in out
    assert "an incompatible upgrade exists: 2.0.0" in out
    assert rig.installed_command() == "racker 1.2.3"
    assert os.readlink(rig.home / "previous") == "releases/1.2.0"
    assert "restart racker.service" in rig.systemctl_log

    out = rig.racker("update").stdout
    assert "racker 1.2.3 is the newest compatible release" in out

    out = rig.racker("upgrade", "--yes").stdout
    assert "racker 1.2.3 -> 2.0.0" in out
    assert "incompatible: 1.2 -> 2.0" in out
    assert "schema 1 -> 2" in out
    assert rig.installed_command() == "racker 2.0.0"
    assert (state / "racker.db.before-1.2.3").exists()  # for a rollback across the migration
    assert sorted(p.name for p in (rig.home / "releases").iterdir()) == ["1.2.3", "2.0.0"]

    out = rig.racker("rollback").stdout
    assert "racker 1.2.3 is current again (was 2.0.0)" in out
    assert rig.installed_command() == "racker 1.2.3"
    assert rig.systemctl_log.count("restart racker.service") == 3


def test_upgrade_asks_first(rig: Rig) -> None:
    install_base(rig)
    result = rig.racker("upgrade", check=False)
    assert result.returncode == 1
    assert "pass --yes" in result.stderr
    assert current(rig) == "releases/1.2.0"


def test_a_corrupted_release_is_refused_and_nothing_changes(rig: Rig) -> None:
    install_base(rig)
    (rig.tmp / "active").touch()
    before = rig.snapshot()
    calls = len(rig.systemctl_log)
    result = rig.racker("update", "--index", f"{rig.url}/index-corrupt.json", check=False)
    assert result.returncode == 1
    assert "SHA-256" in result.stderr and "refused" in result.stderr
    assert rig.snapshot() == before
    assert rig.systemctl_log[calls:] == []  # not even asked whether it runs
    assert rig.installed_command() == "racker 1.2.0"


def test_a_release_that_does_not_start_is_rolled_back(rig: Rig) -> None:
    install_base(rig)
    (rig.tmp / "active").touch()
    (rig.tmp / "fail-restart").touch()
    result = rig.racker("update", check=False)
    assert result.returncode == 1
    assert "did not start with racker 1.2.3; rolled back to 1.2.0" in result.stderr
    assert current(rig) == "releases/1.2.0"
    assert rig.installed_command() == "racker 1.2.0"


@pytest.mark.slow
def test_an_update_killed_midway_leaves_a_working_installation(rig: Rig) -> None:
    install_base(rig)
    rig.handler.delay = 0.05  # 64 KiB every 50 ms: the 4 MiB bundle takes ~3 s
    proc = rig.popen("update")
    downloads = rig.home / "downloads"
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 0 for p in downloads.glob("*.part")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert current(rig) == "releases/1.2.0"
    assert rig.installed_command() == "racker 1.2.0"
    # The next run cleans up and finishes the job.
    rig.handler.delay = 0.0
    assert "racker 1.2.3 is now current" in rig.racker("update").stdout
    assert rig.installed_command() == "racker 1.2.3"
    assert not list(downloads.glob("*.part"))
    assert not list((rig.home / "releases").glob(".part-*"))


def test_uninstall_keeps_state_and_oem_files(rig: Rig) -> None:
    install_base(rig)
    state = rig.root / "var/lib/racker/racker.db"
    oem = rig.root / "usr/share/oem/nodes.csv"
    for path in (state, oem):
        path.parent.mkdir(parents=True)
        path.write_text("keep me")
    out = rig.racker("uninstall").stdout
    assert "kept the state directory and the OEM files" in out
    assert not rig.home.exists()
    assert not (rig.root / "usr/local/bin/racker").is_symlink()
    assert not (rig.root / "usr/local/bin/lokoctl").is_symlink()
    assert not (rig.root / "etc/systemd/system/racker.service").exists()
    assert state.read_text() == oem.read_text() == "keep me"
    assert "disable --now racker.service" in rig.systemctl_log


def test_signing_key_requires_a_signature(rig: Rig) -> None:
    install_base(rig)
    key = rig.tmp / "key.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    config = rig.tmp / "racker.yaml"
    text = config.read_text()
    config.write_text(text.replace("updates:\n", f"updates:\n  signing_key: {key}\n", 1))
    before = rig.snapshot()
    result = rig.racker("update", check=False)
    assert result.returncode == 1
    assert "lists no signature" in result.stderr
    assert rig.snapshot() == before


def test_install_writes_the_pxe_nic_networkd_file_and_uninstall_removes_it(rig: Rig) -> None:
    oem = rig.root / "usr/share/oem"
    oem.mkdir(parents=True)
    example = Path(__file__).parents[3] / "fixtures" / "oem" / "example"
    shutil.copy(example / "nodes.csv", oem / "nodes.csv")
    (oem / "pxe_interface").write_text("52:54:00:99:02:01\n")
    install_base(rig)
    network = rig.root / "etc/systemd/network/50-racker-pxe.network"
    text = network.read_text()
    assert "[Match]\nMACAddress=52:54:00:99:02:01\n" in text
    assert "Address=172.24.213.1/24\nDHCP=no\n" in text
    # networkd takes the first matching file in lexical order: before Flatcar's default one
    assert sorted([network.name, "zz-default.network"])[0] == network.name
    rig.racker("uninstall")
    assert not network.exists()
    assert (oem / "nodes.csv").exists()


def test_install_without_a_known_pxe_nic_says_how_to_get_one(rig: Rig) -> None:
    archive = rig.www / f"racker-1.2.0-linux-{ARCH}.tar.gz"
    out = rig.racker("install", "--bundle", str(archive)).stdout
    assert "no networkd file for the PXE NIC: the OEM files do not name it" in out
    assert not (rig.root / "etc/systemd/network").exists()
