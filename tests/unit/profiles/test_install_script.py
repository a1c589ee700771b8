"""The rendered install script, run by bash against stub tools (no disk is touched).

Stubs for lsblk, flatcar-install, curl and systemctl record their arguments; the "disks" are
block-device nodes made with mknod in a temp dir (never opened). Checks the smallest/largest
choice, the flatcar-install arguments and the JSON posted to racker's events URL.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from racker.profiles import load_catalog
from tests.unit.profiles.helpers import NODE, SETTINGS, context, facts

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash"),
]


def rendered_script(disk: str) -> str:
    from dataclasses import replace
    from types import MappingProxyType

    settings = replace(SETTINGS, install_disks=MappingProxyType({"*": disk}))
    catalog = load_catalog(None, settings)
    ignition = catalog.render_ignition(facts(), context(NODE, settings=settings))
    (script,) = [f for f in ignition["storage"]["files"] if f["path"] == "/opt/racker/install.sh"]
    return base64.b64decode(script["contents"]["source"].split(",", 1)[1]).decode()


def stub(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\n{body}\n")
    path.chmod(0o755)


def run(tmp_path: Path, disk: str, install_rc: int = 0) -> tuple[int, Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    log.mkdir()
    devs = tmp_path / "dev"
    devs.mkdir()
    sizes = {"sda": 500_000_000_000, "sdb": 120_000_000_000, "sdc": 2_000_000_000_000}
    for name in (*sizes, "sr0"):
        os.mknod(devs / name, 0o600 | stat.S_IFBLK, os.makedev(7, 200 + len(name)))
    table = "\n".join(f"{devs / n} {s} 0 0 disk" for n, s in sizes.items())
    table += f"\n{devs / 'usb'} 64000000000 1 0 disk\n{devs / 'sr0'} 1000 0 1 rom"
    stub(bin_dir, "lsblk", f"cat <<'EOF'\n{table}\nEOF")
    stub(
        bin_dir,
        "flatcar-install",
        f'echo "$@" > {log}/install; echo "disk \\"full\\"" >&2; exit {install_rc}',
    )
    stub(
        bin_dir,
        "curl",
        f'for a in "$@"; do printf "%s\\n" "$a"; done >> {log}/curl; echo --- >> {log}/curl',
    )
    stub(bin_dir, "systemctl", f'echo "$@" >> {log}/systemctl')
    stub(bin_dir, "sleep", "exit 0")
    script = rendered_script(disk).replace(
        "LOG=/var/log/racker-install.log", f"LOG={tmp_path}/install.log"
    )
    (tmp_path / "install.sh").write_text(script)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(tmp_path / "install.sh")], env=env, check=False)
    return result.returncode, log


def posted(log: Path) -> list[dict[str, str]]:
    calls = (log / "curl").read_text().split("---\n")
    events = []
    for call in filter(None, calls):
        args = call.splitlines()
        events.append(json.loads(args[args.index("-d") + 1]))
        assert args[-1] == "http://10.99.0.1:8080/events?mac=52:54:00:12:34:56&token=TOKEN-E"
    return events


@pytest.mark.parametrize(("wanted", "chosen"), [("smallest", "sdb"), ("largest", "sdc")])
def test_disk_choice_and_success(tmp_path: Path, wanted: str, chosen: str) -> None:
    code, log = run(tmp_path, wanted)
    assert code == 0
    args = (log / "install").read_text().split()
    assert args[args.index("-d") + 1] == str(tmp_path / "dev" / chosen)
    assert args[args.index("-V") + 1] == "3975.2.0"
    assert args[args.index("-b") + 1] == "http://10.99.0.1:8080/assets/flatcar"
    assert args[args.index("-i") + 1] == "/opt/racker/installed.ign"
    assert [e["event"] for e in posted(log)] == ["install-started", "installed"]
    assert (log / "systemctl").read_text() == "reboot\n"


def test_failure_posts_the_log_tail_as_valid_json_and_does_not_reboot(tmp_path: Path) -> None:
    code, log = run(tmp_path, "smallest", install_rc=1)
    assert code == 1
    events = posted(log)
    assert [e["event"] for e in events] == ["install-started", "failed"]
    assert 'disk "full"' in events[1]["message"]  # quotes survived JSON escaping
    assert not (log / "systemctl").exists()


def test_missing_disk_fails_before_installing(tmp_path: Path) -> None:
    code, log = run(tmp_path, "/dev/does-not-exist")
    assert code == 1
    assert [e["event"] for e in posted(log)] == ["failed"]
    assert "no install disk" in posted(log)[0]["message"]
    assert not (log / "install").exists()
