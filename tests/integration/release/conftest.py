"""A local release server with fake bundles (shell-script "racker"s), a fake systemctl that
records its arguments, and an install root under tmp_path (issue 9)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from racker.release.bundle import BundleInfo, machine_arch, pack_bundle

RACKER = str(Path(sys.executable).with_name("racker"))
ARCH = machine_arch()

FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >> "{log}"
case "$1" in
  is-active) [ -e "{state}/active" ] ;;
  restart) [ ! -e "{state}/fail-restart" ] ;;
  *) exit 0 ;;
esac
"""


class SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files; with ``delay`` set, sends them 64 KiB at a time, slowly."""

    delay = 0.0

    def copyfile(self, source: io.BufferedIOBase, outputfile: io.BufferedIOBase) -> None:  # type: ignore[override]
        if not self.delay:
            super().copyfile(source, outputfile)  # type: ignore[arg-type]
            return
        try:
            while block := source.read(1 << 16):
                outputfile.write(block)
                time.sleep(self.delay)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the test killed the client halfway: expected

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Rig:
    tmp: Path
    www: Path
    url: str
    root: Path
    fakebin: Path
    handler: type[SlowHandler]

    @property
    def systemctl_log(self) -> list[str]:
        path = self.tmp / "systemctl.log"
        return path.read_text().splitlines() if path.exists() else []

    @property
    def home(self) -> Path:
        return self.root / "opt/racker"

    def racker(
        self, *args: str, check: bool = True, **kw: object
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [RACKER, "--config", str(self.tmp / "racker.yaml"), *args],
            capture_output=True,
            text=True,
            env={"PATH": f"{self.fakebin}:/usr/bin:/bin", "RACKER_ROOT": str(self.root)},
            check=False,
            timeout=120,
        )
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [RACKER, "--config", str(self.tmp / "racker.yaml"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={"PATH": f"{self.fakebin}:/usr/bin:/bin", "RACKER_ROOT": str(self.root)},
        )

    def installed_command(self) -> str:
        out = subprocess.run(
            [str(self.root / "usr/local/bin/racker"), "version"],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def snapshot(self) -> dict[str, str]:
        """Every file and link under the root (content hash or link target)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            rel = str(path.relative_to(self.root))
            if path.is_symlink():
                found[rel] = "-> " + str(path.readlink())
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        return found


def make_bundle(tmp: Path, www: Path, version: str, schema: int, big: bool = False) -> Path:
    folder = tmp / "build" / version
    (folder / "_internal").mkdir(parents=True)
    exe = folder / "racker"
    exe.write_text(f'#!/bin/sh\necho "racker {version}"\n')
    exe.chmod(0o755)
    # Incompressible padding, so a slow download of it can be caught halfway.
    padding = hashlib.shake_256(version.encode()).digest(4 << 20) if big else b"x"
    (folder / "_internal" / "padding").write_bytes(padding)
    return pack_bundle(folder, BundleInfo(version, ARCH, schema), www, 1700000000)


def write_index(www: Path, name: str, entries: list[tuple[str, int, Path]]) -> None:
    releases = [
        {
            "version": version,
            "state_schema": schema,
            "notes": [f"release {version}"],
            "bundles": {
                ARCH: {
                    "url": archive.name,
                    "sha256": archive.with_name(archive.name + ".sha256").read_text().split()[0],
                }
            },
        }
        for version, schema, archive in entries
    ]
    (www / name).write_text(json.dumps({"releases": releases}))


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    www = tmp_path / "www"
    www.mkdir()
    base = make_bundle(tmp_path, www, "1.2.0", 1)
    update = make_bundle(tmp_path, www, "1.2.3", 1, big=True)
    upgrade = make_bundle(tmp_path, www, "2.0.0", 2)
    corrupt = make_bundle(tmp_path, www, "1.2.4", 1)
    write_index(
        www, "index.json", [("1.2.0", 1, base), ("1.2.3", 1, update), ("2.0.0", 2, upgrade)]
    )
    write_index(
        www,
        "index-corrupt.json",
        [("1.2.0", 1, base), ("1.2.4", 1, corrupt), ("2.0.0", 2, upgrade)],
    )
    data = bytearray(corrupt.read_bytes())  # flip one byte after the index was written
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    # A pinned tool, as lokoctl ships: a .tar.gz holding the executable.
    tool = io.BytesIO()
    with tarfile.open(fileobj=tool, mode="w:gz") as tar:
        script = b'#!/bin/sh\necho "lokoctl 0.9.0"\n'
        entry = tarfile.TarInfo("lokoctl_v0.9.0_linux_amd64/lokoctl")
        entry.size, entry.mode = len(script), 0o755
        tar.addfile(entry, io.BytesIO(script))
    (www / "lokoctl.tar.gz").write_bytes(tool.getvalue())
    tool_sha = hashlib.sha256(tool.getvalue()).hexdigest()

    handler = type("Handler", (SlowHandler,), {"delay": 0.0})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(www))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    (tmp_path / "racker.yaml").write_text(
        f"updates:\n  url: {url}/index.json\n"
        f"tools:\n  lokoctl:\n    version: 0.9.0\n    url: {url}/lokoctl.tar.gz\n"
        f"    sha256: {tool_sha}\n"
    )
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    systemctl = fakebin / "systemctl"
    systemctl.write_text(FAKE_SYSTEMCTL.format(log=tmp_path / "systemctl.log", state=tmp_path))
    systemctl.chmod(0o755)
    root = tmp_path / "root"
    (root / "run/systemd/system").mkdir(parents=True)  # "systemd is running" in this root
    try:
        yield Rig(tmp_path, www, url, root, fakebin, handler)
    finally:
        server.shutdown()
        server.server_close()
