"""The installer image (packaging/Containerfile), built, loaded and run here without a container
runtime (`podman run` cannot start containers on these machines).

The image is built once per module from the bundle test_bundle.py caches, loaded with
`podman load`, and its filesystem mounted with `podman image mount`. Its ENTRYPOINT, read from
the image's config, then runs the way `docker run --rm --privileged --pid host` would run it:

- `unshare --mount --pid --fork` makes a "host": PID 1 is a shell whose mount namespace is
  rooted (pivot_root) in a scratch tree, Flatcar-like: /etc/os-release says Flatcar, /usr is
  this machine's, read-only, and a recording `systemctl` is on its PATH;
- the "container" is a child of that PID 1 in a mount namespace of its own, chrooted into a
  writable overlay on the image, with /proc of the host's PID namespace (--pid host).

Without --pid host the container gets its own PID namespace too; without --privileged it runs
without CAP_SYS_ADMIN and CAP_SYS_PTRACE (setpriv), as Docker's default capabilities are.

A private dockerd (Debian's docker.io) loads the same archive, and runs it as a real container
without --pid host and without --privileged (with --privileged, runc cannot start containers on
these machines either).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from racker import __version__
from racker.release.bundle import BundleInfo, machine_arch, pack_bundle
from racker.release.layout import Layout
from racker.release.systemd import Systemctl
from racker.release.update import Installer
from racker.store import SCHEMA_VERSION
from tests.integration.release.test_bundle import built_archive, without_python

REPO = Path(__file__).parents[3]
HOW_TO_RUN = "run it as: docker run --rm --privileged --pid host IMAGE"

pytestmark = [pytest.mark.root, pytest.mark.slow]

# Runs as PID 1 of a new PID namespace, in a new mount namespace: becomes the host's init,
# then starts the container and exits with its status.
HOST_INIT = r"""
set -eu
host=$1 image=$2 scratch=$3 mode=$4
shift 4
mount --make-rprivate /
mount --bind "$host" "$host"
for d in bin sbin lib lib64 libexec; do
    [ -d "/usr/$d" ] || continue
    mkdir -p "$host/usr/$d"
    mount --bind "/usr/$d" "$host/usr/$d"
    mount -o remount,bind,ro "$host/usr/$d"
done
mount --rbind /dev "$host/dev"
cd "$host"
pivot_root . mnt
mount -t proc proc /proc
case $mode in
    no-pid-host) isolate="--pid --fork" ;;
    *) isolate="" ;;
esac
rc=0
unshare --mount $isolate sh -c "$CONTAINER" container "/mnt$image" "/mnt$scratch" "$mode" "$@" \
    || rc=$?
exit $rc
"""

# The container: a writable layer over the image, its own /proc and /dev, then the entrypoint
# with the image's environment and nothing else.
CONTAINER = r"""
set -eu
image=$1 scratch=$2 mode=$3
shift 3
mount -t tmpfs tmpfs "$scratch"
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
mount -t overlay overlay \
    -o "lowerdir=$image,upperdir=$scratch/upper,workdir=$scratch/work" "$scratch/root"
mkdir "$scratch/root/proc" "$scratch/root/dev"
mount -t proc proc "$scratch/root/proc"
mount --rbind /dev "$scratch/root/dev"
case $mode in
    no-privileges) drop="setpriv --bounding-set -sys_admin,-sys_ptrace --" ;;
    *) drop="" ;;
esac
exec env -i $IMAGE_ENV $drop chroot "$scratch/root" "$@"
"""

# The host's systemctl: records its arguments; the service "runs" while /run/racker-active
# exists.
RECORDING_SYSTEMCTL = """#!/bin/sh
echo "$*" >> /var/log/systemctl.log
case "$1" in
    is-active) [ -e /run/racker-active ] ;;
    *) exit 0 ;;
esac
"""


@dataclass(frozen=True)
class Image:
    archive: Path
    name: str
    config: dict[str, object]
    rootfs: Path
    commits: frozenset[str]  # HEAD before and after the build (others may commit meanwhile)

    @property
    def entrypoint(self) -> list[str]:
        entrypoint = self.config["Entrypoint"]
        assert isinstance(entrypoint, list)
        return [str(arg) for arg in entrypoint]

    @property
    def env(self) -> list[str]:
        env = self.config.get("Env") or []
        assert isinstance(env, list)
        return [str(var) for var in env]


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args], capture_output=True, text=True, check=False, timeout=300
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """Built with the script `nox -s image` runs, under a name of its own, loaded, mounted;
    unmounted and removed afterwards, whatever happened."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/setup-host installs it)")
    bundle = built_archive()
    work = tmp_path_factory.mktemp("image")
    tag = f"localhost/racker-installer-test-{secrets.token_hex(4)}:{__version__}"
    name = "docker.io/library/" + tag.removeprefix("localhost/")  # as `podman load` names it
    head = ["git", "-C", str(REPO), "rev-parse", "HEAD"]
    commits = {subprocess.run(head, capture_output=True, text=True, check=True).stdout.strip()}
    try:
        build = subprocess.run(
            [sys.executable, str(REPO / "packaging" / "build_image.py"), "--bundle", str(bundle),
             "--out", str(work / "dist"), "--work", str(work / "build"), "--tag", tag,
             "--source", "https://example.invalid/racker.git"],
            capture_output=True, text=True, check=False, timeout=600,
        )  # fmt: skip
        assert build.returncode == 0, build.stdout + build.stderr
        commits.add(subprocess.run(head, capture_output=True, text=True, check=True).stdout.strip())
        archive = work / "dist" / f"racker-installer-{__version__}.oci.tar"
        assert build.stdout.splitlines()[0] == str(archive)
        assert f"{archive.stat().st_size} bytes" in build.stdout  # its size is printed
        assert podman("image", "exists", tag, check=False).returncode == 1  # build's is gone
        loaded = podman("load", "--input", str(archive))
        assert name in loaded.stdout, loaded.stdout
        [inspected] = json.loads(podman("image", "inspect", name).stdout)
        rootfs = Path(podman("image", "mount", name).stdout.strip())
        yield Image(archive, name, inspected["Config"], rootfs, frozenset(commits))
    finally:
        podman("image", "unmount", "--force", name, check=False)
        podman("rmi", "--force", name, tag, check=False)


def make_host(tmp: Path) -> Path:
    """A Flatcar-like scratch root: os-release, systemd "booted", a recording systemctl."""
    host = tmp / "host"
    for folder in ("etc", "run/systemd/system", "usr/local/sbin", "usr/share/oem", "var/log",
                   "dev", "proc", "mnt", "tmp"):  # fmt: skip
        (host / folder).mkdir(parents=True)
    for link in ("bin", "sbin", "lib", "lib64"):
        (host / link).symlink_to(f"usr/{link}")
    (host / "etc/os-release").write_text('ID=flatcar\nNAME="Flatcar Container Linux"\n')
    systemctl = host / "usr/local/sbin/systemctl"
    systemctl.write_text(RECORDING_SYSTEMCTL)
    systemctl.chmod(0o755)
    (tmp / "container").mkdir()
    return host


def run_image(image: Image, host: Path, mode: str = "host") -> subprocess.CompletedProcess[str]:
    """Run the image's entrypoint against ``host``; mode: host (--privileged --pid host),
    no-pid-host, no-privileges."""
    return subprocess.run(
        ["unshare", "--mount", "--pid", "--fork", "--kill-child",
         "sh", "-c", HOST_INIT, "host-init",
         str(host), str(image.rootfs), str(host.parent / "container"), mode, *image.entrypoint],
        capture_output=True, text=True, check=False, timeout=300,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CONTAINER": CONTAINER,
             "IMAGE_ENV": " ".join(image.env)},
    )  # fmt: skip


def systemctl_log(host: Path) -> list[str]:
    log = host / "var/log/systemctl.log"
    return log.read_text().splitlines() if log.exists() else []


def tree(root: Path) -> dict[str, str]:
    """Every file and link under ``root``: content hash or link target."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_the_image_is_labelled_from_scratch_and_loads_in_both_formats(image: Image) -> None:
    labels = image.config["Labels"]
    assert isinstance(labels, dict)
    assert labels["org.opencontainers.image.version"] == __version__
    revision = labels["org.opencontainers.image.revision"]
    assert revision.removesuffix("-dirty") in image.commits, (revision, image.commits)
    assert labels["org.opencontainers.image.source"] == "https://example.invalid/racker.git"
    assert labels["org.opencontainers.image.title"] == "racker-installer"
    # FROM scratch: the bundle, the dynamic loader and a few system libraries; no shell.
    assert image.entrypoint[0] == "/racker/racker"
    assert (image.rootfs / image.entrypoint[0].lstrip("/")).is_file()
    assert not (image.rootfs / "bin").exists() and not (image.rootfs / "usr").exists()
    libs = {p.name for p in image.rootfs.rglob("*.so*") if "racker" not in p.parts}
    assert "libc.so.6" in libs and len(libs) < 12, sorted(libs)
    # One file for both: an OCI layout, plus Docker's manifest.json naming the same blobs.
    with tarfile.open(image.archive) as tar:
        names = set(tar.getnames())
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        [docker] = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"oci-layout", "index.json", "manifest.json"} <= names
    [entry] = index["manifests"]
    assert docker["Config"] in names and all(layer in names for layer in docker["Layers"])
    assert docker["RepoTags"] == [image.name.removeprefix("docker.io/library/")]
    assert entry["annotations"]["io.containerd.image.name"] == image.name


def test_installs_onto_the_host_and_enables_the_unit(image: Image, tmp_path: Path) -> None:
    host = make_host(tmp_path)
    result = run_image(image, host)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"installed racker {__version__} in /opt/racker/releases/{__version__}" in result.stdout
    assert "start it after 'racker factory check': systemctl start racker\n" in result.stdout
    # No OEM files name the PXE NIC here: no networkd file, and the message names the host's path.
    assert "write its MAC to /usr/share/oem/pxe_interface" in result.stdout
    assert not (host / "etc/systemd/network").exists()

    home = host / "opt/racker"
    assert os.readlink(home / "current") == f"releases/{__version__}"
    assert (home / "releases" / __version__ / "_internal").is_dir()
    assert (host / "opt/bin/racker").resolve() == (home / "current/racker").resolve()  # Flatcar
    unit = (host / "etc/systemd/system/racker.service").read_text()
    assert "ExecStart=/opt/racker/current/racker serve" in unit
    # The host's systemctl ran (it exists only in the host's mount namespace).
    assert systemctl_log(host) == [
        "is-active --quiet racker.service",
        "daemon-reload",
        "enable racker.service",
        "is-active --quiet racker.service",
    ]
    installed = without_python(str(host / "opt/bin/racker"), "version")
    assert installed.stdout == f"racker {__version__}\n", installed.stderr


def test_a_second_run_upgrades_in_place_keeping_state_and_oem_files(
    image: Image, tmp_path: Path
) -> None:
    host = make_host(tmp_path)
    # An older release, installed and running; the rack's state and OEM files beside it.
    old = tmp_path / "old"
    (old / "_internal").mkdir(parents=True)
    (old / "racker").write_text('#!/bin/sh\necho "racker 0.0.9"\n')
    (old / "racker").chmod(0o755)
    old_archive = pack_bundle(old, BundleInfo("0.0.9", machine_arch(), SCHEMA_VERSION),
                              tmp_path, 1700000000)  # fmt: skip
    layout = Layout(host, Path("/opt/racker"), Path("/opt/bin"))
    Installer(layout, Systemctl(host, "/nonexistent/systemctl"), lambda _: None).install_archive(
        old_archive
    )
    (host / "var/lib/racker").mkdir(parents=True)
    (host / "var/lib/racker/racker.db").write_bytes(b"the rack's state")
    shutil.copytree(REPO / "fixtures/oem/example", host / "usr/share/oem", dirs_exist_ok=True)
    (host / "run/racker-active").touch()
    kept = {d: tree(host / d) for d in ("var/lib/racker", "usr/share/oem")}

    first = run_image(image, host)
    assert first.returncode == 0, first.stdout + first.stderr
    assert os.readlink(layout.current) == f"releases/{__version__}"
    assert os.readlink(layout.previous) == "releases/0.0.9"
    assert systemctl_log(host).count("restart racker.service") == 1
    # As `racker install` does: the PXE NIC (named in the OEM files) gets racker's address.
    network = (host / "etc/systemd/network/50-racker-pxe.network").read_text()
    pxe_mac = (host / "usr/share/oem/pxe_interface").read_text().strip()
    assert f"MACAddress={pxe_mac}" in network and "Address=" in network

    second = run_image(image, host)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"installed racker {__version__}" in second.stdout
    assert os.readlink(layout.current) == f"releases/{__version__}"
    assert os.readlink(layout.previous) == "releases/0.0.9"
    assert sorted(p.name for p in layout.releases.iterdir()) == ["0.0.9", __version__]
    assert systemctl_log(host).count("restart racker.service") == 1  # same release: no restart
    assert {d: tree(host / d) for d in kept} == kept
    installed = without_python(str(host / "opt/bin/racker"), "version")
    assert installed.stdout == f"racker {__version__}\n", installed.stderr


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("no-pid-host", "PID 1 shares this installer's mount namespace (no --pid host)"),
        ("no-privileges", "PID 1's namespaces are not readable (no --privileged)"),
    ],
)
def test_without_host_access_it_says_how_to_run_it(
    image: Image, tmp_path: Path, mode: str, why: str
) -> None:
    host = make_host(tmp_path)
    before = tree(host)
    result = run_image(image, host, mode)
    assert result.returncode == 4, result.stdout + result.stderr
    assert result.stderr == f"error: cannot reach the host: {why}; {HOW_TO_RUN}\n"
    assert result.stdout == ""
    assert tree(host) == before


@pytest.fixture
def docker(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A dockerd of the test's own (data, sockets, containerd namespace), stopped afterwards;
    yields the environment that points the docker command at it."""
    if shutil.which("dockerd") is None or shutil.which("docker") is None:
        pytest.skip("docker is not installed (scripts/setup-host installs docker.io)")
    run = Path(tempfile.mkdtemp(prefix="racker-dockerd-", dir="/tmp"))  # unix sockets: short
    namespace = run.name
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_HOST": f"unix://{run}/docker.sock"}
    log = (tmp_path / "dockerd.log").open("w")
    daemon = subprocess.Popen(
        ["dockerd", "--data-root", str(tmp_path / "docker"), "--exec-root", str(run / "exec"),
         "--pidfile", str(run / "docker.pid"), "--host", env["DOCKER_HOST"],
         "--iptables=false", "--ip6tables=false", "--bridge=none",
         "--containerd-namespace", namespace,
         "--containerd-plugins-namespace", f"{namespace}-plugins"],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(
            ["docker", "version"], env=env, capture_output=True, check=False
        ).returncode:
            startup = (tmp_path / "dockerd.log").read_text()[-2000:]
            assert daemon.poll() is None and time.monotonic() < deadline, startup
            time.sleep(0.2)
        yield env
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "--recursive", "--lazy", str(tmp_path / "docker")],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(run, ignore_errors=True)


def test_docker_loads_it_and_its_container_says_how_to_run_it(
    image: Image, docker: dict[str, str]
) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=docker, capture_output=True, text=True,
                              check=False, timeout=300)  # fmt: skip

    loaded = run("load", "--input", str(image.archive))
    name = image.name.removeprefix("docker.io/library/")
    assert loaded.stdout.strip() == f"Loaded image: {name}", loaded.stdout + loaded.stderr
    [inspected] = json.loads(run("image", "inspect", name).stdout)
    assert inspected["Config"]["Entrypoint"] == image.entrypoint
    assert inspected["Config"]["Labels"] == image.config["Labels"]
    for flags, why in [
        ([], "PID 1 shares this installer's mount namespace (no --pid host)"),
        (["--pid", "host"], "PID 1's namespaces are not readable (no --privileged)"),
    ]:
        result = run("run", "--rm", *flags, name)
        assert result.returncode == 4, result.stdout + result.stderr
        assert result.stderr == f"error: cannot reach the host: {why}; {HOW_TO_RUN}\n"
