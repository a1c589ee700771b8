"""The node supervisor's power logic with a stand-in QEMU (a shell script first on PATH):
one-time PXE override, reboot after the install into the installed system, power-off."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from racker.sim.vm import MARKER, VmConfig

# Network boot: play the installer (write the marker to the disk, "reboot" = exit).
# Disk boot: play the installed system (stay up until killed).
FAKE_QEMU = f"""#!/bin/sh
disk=$(printf '%s\\n' "$@" | sed -n 's/^file=\\([^,]*\\),format=raw,if=none.*/\\1/p')
case " $* " in
  *" order=n "*)
    echo "fake: pxe boot"
    printf '{MARKER.decode()}' | dd of="$disk" conv=notrunc 2>/dev/null
    exit 0 ;;
  *) echo "fake: installed system up"; exec sleep 60 ;;
esac
"""


@pytest.fixture
def node(tmp_path: Path) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "qemu-system-x86_64"
    fake.write_text(FAKE_QEMU)
    fake.chmod(0o755)
    d = tmp_path / "node0"
    d.mkdir()
    disk = d / "disk.img"
    disk.write_bytes(bytes(4096))
    VmConfig("n0", "bios", "52:54:00:5a:01:10", "u", "tap0", str(disk), "", "/k", "/i").dump(
        d / "vm.json"
    )
    return d


def supervise(node: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PATH": f"{node.parent / 'bin'}:{os.environ['PATH']}"}
    return subprocess.Popen([sys.executable, "-m", "racker.sim.vm", str(node)], env=env)


def wait_for(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def test_pxe_install_then_reboot_into_the_installed_system(node: Path) -> None:
    (node / "boot").write_text("pxe")
    proc = supervise(node)
    try:
        wait_for(node / "serial.log", "fake: installed system up")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    log = (node / "serial.log").read_text()
    order = ["boot from pxe", "fake: pxe boot", "boot from disk", "installed system up"]
    positions = [log.index(step) for step in order]
    assert positions == sorted(positions), log
    assert log.rstrip().endswith("power off ===")
    assert (node / "boot").read_text() == "default"  # the PXE override was used once
    assert not (node / "supervisor.pid").exists() and not (node / "qemu.pid").exists()


def test_nothing_installed_and_no_pxe_powers_off(node: Path) -> None:
    proc = supervise(node)
    assert proc.wait(10) == 0
    assert "nothing installed on the disk; power off" in (node / "serial.log").read_text()


def test_a_qemu_that_cannot_start_does_not_spin(node: Path) -> None:
    (node.parent / "bin" / "qemu-system-x86_64").write_text("#!/bin/sh\nexit 1\n")
    (node / "boot").write_text("pxe")
    (node / "disk.img").write_bytes(MARKER)  # after the PXE try, the disk path is tried too
    proc = supervise(node)
    assert proc.wait(20) == 1
    assert "qemu fails to start; power off" in (node / "serial.log").read_text()
