"""The real bundle (PyInstaller) runs on a host without Python (issue 9).

Built once into a cache directory reused across runs (RACKER_BUNDLE_CACHE, default
.cache/bundle in the checkout, which git ignores: not a temporary directory left behind;
rebuilt when racker's sources or packaging/'s build files are newer than the archive, compiled
bytecode not counted). Then run
in a private mount namespace where every python3, its standard library, libpython and the
venv are hidden, with ``env -i PATH=/usr/bin:/bin``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from racker import __version__
from racker.rack.oem import Secret, write_credentials
from racker.release.bundle import archive_name, machine_arch, sha256_file, unpack_bundle

REPO = Path(__file__).parents[3]
CACHE = Path(os.environ.get("RACKER_BUNDLE_CACHE", REPO / ".cache" / "bundle"))

pytestmark = [pytest.mark.root, pytest.mark.slow]

HIDE_PYTHON = """
mount --make-rprivate /
for d in /usr/lib/python3* /usr/local/lib/python3* "$VENV" /root/.pyenv; do
    [ -d "$d" ] && mount -t tmpfs none "$d"
done
for f in /usr/bin/python3* /usr/local/bin/python3* /usr/lib/*-linux-gnu/libpython3*; do
    [ -e "$f" ] && mount --bind /dev/null "$f"
done
exec env -i PATH=/usr/bin:/bin "$@"
"""


def built_archive() -> Path:
    archive = CACHE / "dist" / archive_name(__version__, machine_arch())
    sources = [*(REPO / "src" / "racker").rglob("*"), *(REPO / "packaging").glob("*.py"),
               REPO / "packaging" / "racker.spec"]  # fmt: skip
    # Importing racker (this very test run) writes __pycache__: not a change to the sources.
    sources = [p for p in sources if "__pycache__" not in p.parts]
    newest = max(p.stat().st_mtime for p in sources if p.is_file())
    if not archive.exists() or archive.stat().st_mtime < newest:
        if shutil.which("pyinstaller", path=str(Path(sys.executable).parent)) is None:
            pytest.skip("PyInstaller is not installed (pip install -e .[dev])")
        subprocess.run(
            [sys.executable, str(REPO / "packaging" / "build_bundle.py"),
             "--out", str(CACHE / "dist"), "--work", str(CACHE / "build")],
            check=True, capture_output=True, timeout=1800,
        )  # fmt: skip
    return archive


def without_python(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", HIDE_PYTHON, "sh", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "VENV": str(Path(sys.prefix))},
    )


def test_the_bundle_runs_without_python(tmp_path: Path) -> None:
    archive = built_archive()
    checksum = archive.with_name(archive.name + ".sha256").read_text().split()
    assert checksum == [sha256_file(archive), archive.name]
    info = unpack_bundle(archive, tmp_path / "bundle")
    assert info.version == __version__
    racker = str(tmp_path / "bundle" / "racker" / "racker")

    probe = without_python("sh", "-c", "python3 -c 1 || echo no-python")
    assert "no-python" in probe.stdout, probe.stdout + probe.stderr
    result = without_python(racker, "version")
    assert result.stdout == f"racker {__version__}\n", result.stderr
    oem = tmp_path / "oem"
    shutil.copytree(REPO / "fixtures" / "oem" / "example", oem)
    write_credentials(oem, "admin", Secret("pw"))
    result = without_python(racker, "factory", "check", "--offline", "--oem-dir", str(oem))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rack metadata is valid" in result.stdout
    # The bundle installs itself (racker install from the unpacked folder).
    root = tmp_path / "root"
    result = without_python(racker, "install", "--root", str(root))
    assert result.returncode == 0, result.stdout + result.stderr
    installed = without_python(str(root / "usr/local/bin/racker"), "version")
    assert installed.stdout == f"racker {__version__}\n", installed.stderr
