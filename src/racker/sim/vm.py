"""One simulated node's machine: the QEMU command line and the supervisor behind its BMC.

The BMC (``ipmi_sim``) calls ``chassis_control``; "power on" starts this supervisor (in the
rack namespace), "power off" sends it SIGTERM, "reset" SIGHUP. The supervisor *is* the node's
power state: it runs QEMU, and when the guest reboots (QEMU runs with ``-no-reboot``, so a
reboot ends the process) it starts QEMU again from the boot device in force, as a server's
firmware would. The boot device is a one-time override, as BMCs implement ``bootdev``: "pxe"
applies to the next start only. Without it the node boots its disk when the installer wrote
the marker there (direct kernel boot: QEMU cannot boot our marker), and powers off otherwise.

    python -m racker.sim.vm NODE_DIR        # started by chassis_control; NODE_DIR/vm.json
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

from racker.sim.guest import IPXE_ROM_DIR, OVMF_CODE, QEMU

MARKER = b"RACKER-SIM-INSTALLED"
SERIAL_LOG = "serial.log"
BOOT_FILE = "boot"  # the boot device chassis_control recorded ("pxe", "default", "disk", ...)


@dataclass(frozen=True)
class VmConfig:
    name: str
    firmware: str  # bios, uefi or uefi-http
    mac: str
    uuid: str
    tap: str
    disk: str
    vars: str  # per-VM copy of OVMF_VARS (uefi)
    kernel: str
    initramfs: str
    memory_mib: int = 384

    @classmethod
    def load(cls, path: Path) -> VmConfig:
        return cls(**json.loads(path.read_text()))

    def dump(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))


def qemu_argv(vm: VmConfig, boot: str) -> list[str]:
    """QEMU for one boot: ``pxe`` (firmware network boot) or ``disk`` (installed system)."""
    argv = [
        QEMU,
        "-accel",
        "tcg",
        "-name",
        vm.name,
        "-m",
        str(vm.memory_mib),
        "-uuid",
        vm.uuid,
        # -display none would silence SeaBIOS and iPXE on the serial port (RIG.md).
        "-nographic",
        "-nodefaults",
        "-serial",
        "stdio",
        "-monitor",
        "none",
        "-no-reboot",
        "-netdev",
        f"tap,id=n0,ifname={vm.tap},script=no,downscript=no",
        "-drive",
        f"file={vm.disk},format=raw,if=none,id=d0",
        "-device",
        "virtio-blk-pci,drive=d0",
    ]
    if vm.firmware in ("uefi", "uefi-http"):
        # OVMF's own network stack on virtio-net (no option ROM). uefi: UEFI PXE -> TFTP
        # ipxe.efi -> iPXE. uefi-http: OVMF tries PXEv4 (racker gives it no boot file), then
        # HTTPv4 -> HTTP ipxe.efi -> iPXE.
        argv += ["-machine", "q35"]
        argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}"]
        argv += ["-drive", f"if=pflash,format=raw,file={vm.vars}"]
        argv += ["-device", f"virtio-net-pci,netdev=n0,mac={vm.mac},romfile="]
        if vm.firmware == "uefi-http":
            # No PXEv6 attempt (nothing answers DHCPv6: ~1 min of timeouts before HTTPv4).
            argv += ["-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=n"]
    else:
        # SeaBIOS runs the iPXE ROM of the e1000 (ipxe-qemu).
        argv += ["-machine", "pc"]
        rom = IPXE_ROM_DIR / "pxe-e1000.rom"
        argv += ["-device", f"e1000,netdev=n0,mac={vm.mac},romfile={rom}"]
    if boot == "pxe":
        argv += ["-boot", "order=n"]
    else:
        argv += ["-kernel", vm.kernel, "-initrd", vm.initramfs]
        argv += ["-append", "console=ttyS0,115200n8 racker.sim=installed"]
    return argv


def installed(disk: Path) -> bool:
    try:
        with disk.open("rb") as f:
            return f.read(len(MARKER)) == MARKER
    except OSError:
        return False


def take_boot_device(node_dir: Path) -> str:
    """The device for this start; a "pxe" override is used once (IPMI boot flags, one-time)."""
    path = node_dir / BOOT_FILE
    try:
        device = path.read_text().strip() or "default"
    except FileNotFoundError:
        device = "default"
    if device == "pxe":
        path.write_text("default")
    return device


class Supervisor:
    """Runs the node's QEMU until told to power off (SIGTERM) or nothing is left to boot."""

    def __init__(self, node_dir: Path) -> None:
        self.dir = node_dir
        self.vm = VmConfig.load(node_dir / "vm.json")
        self.qemu: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self.resetting = False  # a BMC reset ended this QEMU, not a failure to start

    def note(self, text: str) -> None:
        with (self.dir / SERIAL_LOG).open("a") as log:
            log.write(f"\n=== racker-sim {time.strftime('%H:%M:%S')} {text} ===\n")

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            self.stopping = True
        else:
            self.resetting = True
        if self.qemu is not None and self.qemu.poll() is None:
            self.qemu.terminate()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGHUP, self._signal)
        (self.dir / "supervisor.pid").write_text(f"{os.getpid()}\n")
        quick_failures = 0
        try:
            while not self.stopping:
                device = take_boot_device(self.dir)
                boot = "pxe" if device == "pxe" else "disk"
                if boot == "disk" and not installed(Path(self.vm.disk)):
                    self.note(f"boot device {device}: nothing installed on the disk; power off")
                    return 0
                self.note(f"power on: {self.vm.firmware} boot from {boot}")
                started = time.monotonic()
                with (self.dir / SERIAL_LOG).open("ab") as log:
                    self.qemu = subprocess.Popen(
                        qemu_argv(self.vm, boot), stdin=subprocess.DEVNULL, stdout=log, stderr=log
                    )
                (self.dir / "qemu.pid").write_text(f"{self.qemu.pid}\n")
                if self.stopping:  # powered off while QEMU was being started
                    self.qemu.terminate()
                code = self.qemu.wait()
                self.note(f"qemu exited ({code})")
                # A QEMU that cannot start (bad tap, missing firmware) must not spin forever.
                quick = code != 0 and time.monotonic() - started < 3 and not self.resetting
                self.resetting = False
                quick_failures = quick_failures + 1 if quick else 0
                if quick_failures >= 3:
                    self.note("qemu fails to start; power off")
                    return 1
            self.note("power off")
            return 0
        finally:
            if self.qemu is not None and self.qemu.poll() is None:
                self.qemu.kill()
                self.qemu.wait()
            for name in ("qemu.pid", "supervisor.pid"):
                (self.dir / name).unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m racker.sim.vm NODE_DIR", file=sys.stderr)
        return 2
    # Our own session: ipmi_sim's signals and exit do not reach the VM (already a leader: fine).
    with contextlib.suppress(OSError):
        os.setsid()
    return Supervisor(Path(argv[0])).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
