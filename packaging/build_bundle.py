"""Build racker's self-contained bundle (issue 9): PyInstaller one-folder + a reproducible tar.gz.

    python packaging/build_bundle.py [--out dist] [--work build/bundle]

Run by ``nox -s bundle`` in a virtualenv holding racker and PyInstaller (both from PyPI).
SOURCE_DATE_EPOCH (default: the last commit's time) fixes every timestamp in the archive, and
PYTHONHASHSEED=0 keeps PyInstaller's own output in a stable order.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def source_date_epoch() -> int:
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "bundle")
    args = parser.parse_args()

    from racker import __version__
    from racker.release.bundle import BundleInfo, machine_arch, pack_bundle
    from racker.store import SCHEMA_VERSION

    epoch = source_date_epoch()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), PYTHONHASHSEED="0")
    dist = args.work / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--clean",
            "--log-level=WARN",
            "--distpath",
            str(dist),
            "--workpath",
            str(args.work / "work"),
            str(HERE / "racker.spec"),
        ],
        cwd=HERE,
        env=env,
        check=True,
    )
    info = BundleInfo(__version__, machine_arch(), SCHEMA_VERSION)
    archive = pack_bundle(dist / "racker", info, args.out, epoch)
    print(archive)
    print(archive.with_name(archive.name + ".sha256").read_text().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
