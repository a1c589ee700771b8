"""The sim guest (Debian kernel + busybox "Flatcar installer" initramfs) and firmware files.

Built and cached by ``scripts/build-sim-guest``; never committed. The cache is
``$RACKER_SIM_CACHE``, else ``/var/cache/racker/sim`` as root, else ``$XDG_CACHE_HOME/racker/sim``
or ``~/.cache/racker/sim`` (the same rule as the script). The CLI reads those variables and
hands the values to ``cache_dir``; the script is told the chosen directory.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from racker.errors import EnvironmentProblem

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
IPXE_ROM_DIR = Path("/usr/lib/ipxe/qemu")
IPXE_DIR = Path("/usr/lib/ipxe")  # the ipxe package's loaders (undionly.kpxe, ipxe.efi)
QEMU = "qemu-system-x86_64"
IPMI_SIM = "ipmi_sim"
BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "build-sim-guest"
SETUP_HINT = "run scripts/setup-host (Debian: qemu-system-x86 ipxe-qemu ipxe ovmf seabios openipmi)"


@dataclass(frozen=True)
class GuestFiles:
    kernel: Path
    initramfs: Path


def cache_dir(sim_cache: str | None = None, xdg_cache_home: str | None = None) -> Path:
    """Where the guest is cached: ``sim_cache`` ($RACKER_SIM_CACHE) when given, else the
    system cache as root, else the user's (``xdg_cache_home``, $XDG_CACHE_HOME, or ~/.cache)."""
    if sim_cache:
        return Path(sim_cache)
    if os.geteuid() == 0:
        return Path("/var/cache/racker/sim")
    base = xdg_cache_home or str(Path.home() / ".cache")
    return Path(base) / "racker" / "sim"


def guest_files(cache: Path | None = None, build: bool = True) -> GuestFiles:
    """The guest cached in ``cache`` (default: ``cache_dir()``); built first (when the build
    script is at hand and ``build``)."""
    cache = cache or cache_dir()
    if build and BUILD_SCRIPT.is_file():
        # The script is a no-op when the cache is current (it checks a stamp). It is told the
        # directory, so it builds where this process looks.
        env = {**os.environ, "RACKER_SIM_CACHE": str(cache)}
        done = subprocess.run(
            [str(BUILD_SCRIPT)], capture_output=True, text=True, check=False, env=env
        )
        if done.returncode != 0:
            raise EnvironmentProblem(
                f"building the sim guest failed: {done.stderr.strip()[-500:]}",
                f"run {BUILD_SCRIPT} and fix what it reports",
            )
    files = GuestFiles(cache / "vmlinuz", cache / "initramfs.cpio.gz")
    missing = [str(p) for p in (files.kernel, files.initramfs) if not p.is_file()]
    if missing:
        raise EnvironmentProblem(
            f"the sim guest is not built: missing {', '.join(missing)}",
            "run scripts/build-sim-guest (from racker's source tree)",
        )
    return files


def check_host() -> None:
    """Everything ``racker sim up`` runs must be installed; one error names all that is not."""
    import shutil

    missing = [tool for tool in (QEMU, IPMI_SIM, "ip") if shutil.which(tool) is None]
    missing += [
        str(p)
        for p in (OVMF_CODE, OVMF_VARS, IPXE_ROM_DIR / "pxe-e1000.rom", IPXE_DIR / "ipxe.efi")
        if not p.exists()
    ]
    if missing:
        raise EnvironmentProblem(f"the simulator needs: {', '.join(missing)}", SETUP_HINT)
    if os.geteuid() != 0:
        raise EnvironmentProblem(
            "racker sim needs root (network namespaces, taps, BMCs on UDP 623)", "run it as root"
        )
