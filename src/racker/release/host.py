"""Installing racker onto the host from inside its installer image (layer 2).

``docker run --rm --privileged --pid host IMAGE`` runs the image's bundle in a container that
shares the host's PID namespace, so PID 1 is the host's init and:

- ``/proc/1/root`` is the host's root directory: the bundle copies itself there, as
  ``racker install --root /proc/1/root`` does (same layout, lock and unit);
- ``/proc/1/ns/mnt`` is the host's mount namespace: a child process that joins it with
  setns(2) sees the host's files as its own, so it runs the host's ``systemctl`` (talking to
  the host's systemd) and the new release on the host's C library, as its service will.

``racker install-on-host``, the image's ENTRYPOINT, wires these steps to ``racker install``'s
(``racker.app.install``). The image holds no shell and no nsenter: the bundle's own Python
does the setns, through ctypes (``os.setns`` needs Python 3.12). Without ``--pid host``, PID 1
is inside the container; without ``--privileged``, the container may neither read PID 1's root
nor join its namespace. ``Host.check`` tells these apart before anything is written.
"""

from __future__ import annotations

import ctypes
import functools
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from racker.errors import EnvironmentProblem
from racker.rack.config import Config
from racker.rack.loading import DEFAULT_CONFIG, Options, read_config, state_dir
from racker.release.layout import Layout, default_bin_dir
from racker.release.systemd import Systemctl
from racker.release.update import Installer, Say

HOW_TO_RUN = "docker run --rm --privileged --pid host IMAGE"
# The host's commands are looked up here, inside the host (Flatcar keeps its own in /usr/bin).
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/bin"
CLONE_NEWNS = 0x00020000  # <linux/sched.h>: setns(2) into a mount namespace


def no_access(why: str) -> EnvironmentProblem:
    # One line, no hint: all the operator needs is the missing flag and the command to run.
    return EnvironmentProblem(f"cannot reach the host: {why}; run it as: {HOW_TO_RUN}")


@dataclass(frozen=True)
class Host:
    """The host as the installer container sees it, through PID 1 in ``proc``."""

    proc: Path = Path("/proc")

    @property
    def root(self) -> Path:
        return self.proc / "1" / "root"

    def check(self) -> None:
        """Raise, saying which flag is missing, unless PID 1 is another mount namespace's
        process whose root this process can read and whose namespace it can join."""
        try:
            own = os.stat(self.proc / "self" / "ns" / "mnt")
            init = os.stat(self.proc / "1" / "ns" / "mnt")
        except PermissionError:
            raise no_access("PID 1's namespaces are not readable (no --privileged)") from None
        except OSError as exc:
            raise no_access(f"{exc.filename}: {exc.strerror}") from None
        if (own.st_dev, own.st_ino) == (init.st_dev, init.st_ino):
            raise no_access("PID 1 shares this installer's mount namespace (no --pid host)")
        try:
            os.stat(self.root / "etc")
        except OSError as exc:
            raise no_access(f"{self.root}/etc: {exc.strerror} (no --privileged)") from None
        if not self._can_enter():
            raise no_access("joining PID 1's mount namespace was refused (no --privileged)")

    def enter(self) -> None:
        """Join PID 1's mount namespace; the caller's root and working directory become the
        host's. For a child process, between fork and exec (setns(2) on a mount namespace
        needs a process that shares its filesystem attributes with no other thread)."""
        fd = os.open(self.proc / "1" / "ns" / "mnt", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc().setns(fd, CLONE_NEWNS) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns: {os.strerror(err)}")
        finally:
            os.close(fd)

    def _can_enter(self) -> bool:
        _libc()  # loaded before the fork, so the child only calls it
        pid = os.fork()
        if pid == 0:  # the child: try, report through the exit status, never return
            code = 1
            try:
                self.enter()
                code = 0
            finally:
                os._exit(code)
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


class HostSystemctl(Systemctl):
    """The host's ``systemctl``, run in the host's mount namespace, where the binary, its
    libraries and the sockets of the host's systemd are."""

    def __init__(self, host: Host) -> None:
        super().__init__(host.root)
        self.host = host

    def available(self) -> bool:
        booted = (self.root / "run/systemd/system").is_dir()
        # lexists: the host's links point into the host, where this process cannot follow.
        return booted and any(
            os.path.lexists(self.root / folder.lstrip("/") / self.command)
            for folder in HOST_PATH.split(":")
        )

    def _spawn(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                check=False,
                env={"PATH": HOST_PATH, "LC_ALL": "C.UTF-8"},
                preexec_fn=self.host.enter,  # safe: racker runs no threads while it installs
            )
        except (OSError, subprocess.SubprocessError) as exc:  # not found, or setns refused
            return subprocess.CompletedProcess(argv, 127, "", f"on the host: {exc}")


def host_installer(
    host: Host, prefix: Path, bin_dir: Path | None, say: Say
) -> tuple[Installer, Options, Config]:
    """The installer for ``prefix`` on the host, once ``host.check`` passed; the host's
    racker.yaml (if any) decides the state directory and the pinned tools, as for
    ``racker install`` run there. Its messages name paths as the host does."""
    host.check()
    root = host.root
    host_config = root / DEFAULT_CONFIG.relative_to("/")
    options = Options(config=host_config if host_config.is_file() else None)
    config = read_config(options)
    installer = Installer(
        Layout(root, prefix, bin_dir or default_bin_dir(root)),
        HostSystemctl(host),
        lambda line: say(line.replace(str(root), "")),
        tools=config.tools,
        state_dir=root / state_dir(options, config).relative_to("/"),
        enter_root=host.enter,
    )
    return installer, options, config


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)
