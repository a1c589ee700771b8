"""Build racker's installer image from the bundle: dist/racker-installer-VERSION.oci.tar.

    python packaging/build_image.py [--bundle dist/racker-V-linux-ARCH.tar.gz] [--out dist]
                                    [--work build/image] [--source URL] [--keep-image]

Run by ``nox -s image`` (which builds the bundle first when dist/ has none); needs podman (as
root here). packaging/Containerfile is the recipe: FROM scratch, so nothing is downloaded.
This script prepares its build context:

- the bundle archive, which the Containerfile ADDs (unpacked to /racker);
- runtime/: the dynamic loader and the system libraries the bundle's executables link
  against but PyInstaller leaves out (glibc, and the zlib its bootloader needs), found with
  ``ldd`` and copied from this machine, the one whose libraries the bundle was built with.

The image is saved with ``podman save --format oci-archive``; a Docker ``manifest.json``
naming the same blobs is added (as ``docker save`` has written since Docker 25), so both
``podman load`` and ``docker load`` (old and new) accept the one file. Timestamps come from
SOURCE_DATE_EPOCH (default: the last commit's time).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from build_bundle import REPO, source_date_epoch

# The project's home, as the systemd unit's Documentation= gives it: the image's source label
# when neither --source, $RACKER_SOURCE_URL nor a git remote says otherwise.
PROJECT_URL = "https://github.com/kinvolk/racker"

NAME = "racker-installer"
CONTAINERFILE = REPO / "packaging" / "Containerfile"
# ldd's lines: "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" and, for the loader,
# "/lib64/ld-linux-x86-64.so.2 (0x...)"; "linux-vdso.so.1 (0x...)" is the kernel's.
LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+) \(0x[0-9a-f]+\)$")


def git(*args: str) -> str:
    result = subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def revision() -> str:
    """The commit, marked -dirty when tracked files differ from it (the image is then not
    exactly that commit)."""
    commit = git("rev-parse", "HEAD") or "unknown"
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD"], check=False)
    return commit + ("-dirty" if dirty.returncode == 1 else "")


def read_manifest(archive: Path) -> dict[str, object]:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("racker/BUNDLE.json")
        if member is None:
            sys.exit(f"build_image: {archive} holds no racker/BUNDLE.json")
        data: dict[str, object] = json.load(member)
        return data


def is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def system_libraries(bundle: Path) -> set[Path]:
    """The files outside ``bundle`` that its executables load: the bootloader is resolved
    without the bundle's folder on the search path (its own libraries come first only once
    it runs), the bundle's libraries with ``_internal`` first, as at run time."""
    internal = bundle / "_internal"
    targets: list[tuple[Path, dict[str, str]]] = [(bundle / "racker", {})] + [
        (path, {"LD_LIBRARY_PATH": str(internal)})
        for path in sorted(internal.rglob("*.so*"))
        if path.is_file() and not path.is_symlink() and is_elf(path)
    ]
    found: set[Path] = set()
    for path, extra in targets:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **extra}
        out = subprocess.run(
            ["ldd", str(path)], capture_output=True, text=True, env=env, check=False
        )
        if "not found" in out.stdout:
            sys.exit(f"build_image: {path} needs a library this machine lacks:\n{out.stdout}")
        for line in out.stdout.splitlines():
            match = LDD_LINE.match(line)
            if match is None or not match.group(2).startswith("/"):
                continue
            lib = Path(match.group(2))
            if not lib.resolve().is_relative_to(bundle.resolve()):
                found.add(lib)
    return found


def prepare_context(archive: Path, work: Path) -> Path:
    context = work / "context"
    shutil.rmtree(work, ignore_errors=True)
    context.mkdir(parents=True)
    shutil.copy2(archive, context / archive.name)
    unpacked = work / "unpacked"
    unpacked.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="tar")
    runtime = context / "runtime"
    for lib in sorted(system_libraries(unpacked / "racker")):
        dest = runtime / lib.relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)  # the file itself, at the path the loader asks for
    shutil.rmtree(unpacked)
    return context


def blob(digest: str) -> str:
    return "blobs/" + digest.replace(":", "/")


def docker_compatible(saved: Path, out: Path, tag: str, epoch: int) -> None:
    """Copy podman's OCI archive, adding Docker's manifest.json (and the image name in the
    annotation Docker and containerd read), with sorted entries and one mtime."""
    files: dict[str, bytes] = {}
    with tarfile.open(saved) as tar:
        for member in tar.getmembers():
            data = tar.extractfile(member) if member.isfile() else None
            if data is not None:
                files[member.name.removeprefix("./")] = data.read()
    index = json.loads(files["index.json"])
    [entry] = index["manifests"]
    manifest = json.loads(files[blob(entry["digest"])])
    repo_tag = tag.removeprefix("localhost/")
    files["manifest.json"] = json.dumps(
        [{"Config": blob(manifest["config"]["digest"]), "RepoTags": [repo_tag],
          "Layers": [blob(layer["digest"]) for layer in manifest["layers"]]}]
    ).encode()  # fmt: skip
    # As `docker save` writes them: the full name for containerd, the tag for OCI tools.
    entry["annotations"] = {
        "io.containerd.image.name": f"docker.io/library/{repo_tag}",
        "org.opencontainers.image.ref.name": repo_tag.rpartition(":")[2],
    }
    files["index.json"] = json.dumps(index).encode()
    dirs = {str(p) for name in files for p in Path(name).parents} - {"."}
    part = out.with_name(out.name + ".part")
    with tarfile.open(part, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(dirs | set(files)):
            info = tarfile.TarInfo(name)
            info.mtime = epoch
            if name in dirs:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(files[name]), 0o644
                tar.addfile(info, io.BytesIO(files[name]))
    part.replace(out)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="the bundle archive [default: dist/'s]")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    parser.add_argument("--work", type=Path, default=REPO / "build" / "image")
    parser.add_argument("--tag", help=f"image name [default: localhost/{NAME}:VERSION]")
    parser.add_argument("--source", default=os.environ.get("RACKER_SOURCE_URL"),
                        help="org.opencontainers.image.source [default: $RACKER_SOURCE_URL, "
                        "else git's remote origin, else the project's URL]")  # fmt: skip
    parser.add_argument("--keep-image", action="store_true",
                        help="leave the image in podman's storage (default: remove it once "
                        "saved; `podman load` brings it back)")  # fmt: skip
    args = parser.parse_args()

    if shutil.which("podman") is None:
        sys.exit("build_image: podman is not installed (scripts/setup-host installs it)")
    archive = args.bundle
    if archive is None:
        from racker import __version__
        from racker.release.bundle import archive_name, machine_arch

        archive = args.out / archive_name(__version__, machine_arch())
    if not archive.is_file():
        sys.exit(f"build_image: no bundle at {archive}; build it first: nox -s bundle")
    info = read_manifest(archive)
    version, arch = str(info["version"]), str(info["arch"])
    tag = args.tag or f"localhost/{NAME}:{version}"
    source = args.source or git("remote", "get-url", "origin") or PROJECT_URL
    epoch = source_date_epoch()

    context = prepare_context(archive, args.work)
    build_args = {"VERSION": version, "ARCH": arch, "REVISION": revision(), "SOURCE": source}
    subprocess.run(
        ["podman", "build", "--file", str(CONTAINERFILE), "--tag", tag,
         "--timestamp", str(epoch), "--pull=never", "--layers=false", "--quiet",
         *(f"--build-arg={k}={v}" for k, v in build_args.items()), str(context)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        saved = args.work / "podman.oci.tar"
        subprocess.run(
            ["podman", "save", "--quiet", "--format", "oci-archive", "--output", str(saved),
             tag],
            check=True,
        )  # fmt: skip
        args.out.mkdir(parents=True, exist_ok=True)
        out = args.out / f"{NAME}-{version}.oci.tar"
        docker_compatible(saved, out, tag, epoch)
        saved.unlink()
    finally:
        if not args.keep_image:
            subprocess.run(["podman", "rmi", "--force", tag], check=False,
                           stdout=subprocess.DEVNULL)  # fmt: skip
    shutil.rmtree(context)
    size = out.stat().st_size
    print(out)
    print(f"{size / 1e6:.1f} MB ({size} bytes), sha256 {sha256(out)}")
    print(f"load it: docker load -i {out.name}  (or podman load); "
          f"run it: docker run --rm --privileged --pid host {NAME}:{version}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
