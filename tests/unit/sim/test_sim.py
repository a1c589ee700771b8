"""The simulator's pure parts: rack plan, QEMU command lines, boot-device semantics, and the
chassis_control program's get/set protocol (ipmi_sim(1)) on a node directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from racker.sim.rack import DATA
from racker.sim.spec import SimSpec, SimSpecError, plan_sim
from racker.sim.vm import MARKER, VmConfig, installed, qemu_argv, take_boot_device


@pytest.mark.parametrize(
    ("firmware", "count", "expected"),
    [
        ("bios", 2, ["bios", "bios"]),
        ("uefi", 1, ["uefi"]),
        ("uefi-http", 2, ["uefi-http", "uefi-http"]),
        ("mixed", 3, ["bios", "uefi", "bios"]),
    ],
)
def test_plan_firmware(firmware: str, count: int, expected: list[str]) -> None:
    spec = plan_sim("t1", count, firmware)
    assert [n.firmware for n in spec.nodes] == expected


def test_plan_names_and_addresses() -> None:
    spec = plan_sim("lab", 2, "mixed", subnet="10.99.0.0/24", root=Path("/x"))
    assert (spec.mgmt_ns, spec.rack_ns) == ("rsim-lab-m", "rsim-lab-r")
    assert (spec.server, spec.prefix, spec.directory) == ("10.99.0.1", 24, "/x/lab")
    assert [(n.mac, n.bmc_host, n.tap) for n in spec.nodes] == [
        ("52:54:00:5a:01:10", "127.0.6.10", "tap0"),
        ("52:54:00:5a:01:11", "127.0.6.11", "tap1"),
    ]
    assert spec.nodes[0].hostname == "worker-5a0110"  # racker's default host name for the MAC
    assert SimSpec.from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("name", "count", "firmware", "subnet"),
    [
        ("Bad_Name", 1, "bios", "10.99.0.0/24"),
        ("ok", 0, "bios", "10.99.0.0/24"),
        ("ok", 65, "bios", "10.99.0.0/24"),
        ("ok", 1, "coreboot", "10.99.0.0/24"),
        ("ok", 1, "bios", "10.99.0.0/29"),
    ],
)
def test_plan_rejects(name: str, count: int, firmware: str, subnet: str) -> None:
    with pytest.raises(SimSpecError):
        plan_sim(name, count, firmware, subnet)


def vm(firmware: str) -> VmConfig:
    return VmConfig("r-node0", firmware, "52:54:00:5a:01:10", "u", "tap0", "/d.img", "/v.fd",
                    "/k", "/i")  # fmt: skip


def flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_qemu_bios_pxe_uses_the_ipxe_rom_of_an_e1000() -> None:
    argv = qemu_argv(vm("bios"), "pxe")
    assert flag_values(argv, "-machine") == ["pc"]
    assert flag_values(argv, "-device")[-1] == (
        "e1000,netdev=n0,mac=52:54:00:5a:01:10,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom"
    )
    assert flag_values(argv, "-boot") == ["order=n"]
    assert "-kernel" not in argv and "-drive" in argv
    # RIG.md: -nographic (not -display none) or SeaBIOS/iPXE never write to the serial port
    for flag in ("-nographic", "-nodefaults", "-no-reboot"):
        assert flag in argv
    assert flag_values(argv, "-accel") == ["tcg"]


@pytest.mark.parametrize("firmware", ["uefi", "uefi-http"])
def test_qemu_uefi_pxe_uses_ovmfs_own_network_stack_on_virtio(firmware: str) -> None:
    argv = qemu_argv(vm(firmware), "pxe")
    assert flag_values(argv, "-machine") == ["q35"]
    drives = flag_values(argv, "-drive")
    assert "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in drives
    assert "if=pflash,format=raw,file=/v.fd" in drives
    assert "virtio-net-pci,netdev=n0,mac=52:54:00:5a:01:10,romfile=" in flag_values(argv, "-device")


@pytest.mark.parametrize("firmware", ["bios", "uefi", "uefi-http"])
def test_qemu_disk_boot_starts_the_installed_system(firmware: str) -> None:
    argv = qemu_argv(vm(firmware), "disk")
    assert flag_values(argv, "-kernel") == ["/k"] and flag_values(argv, "-initrd") == ["/i"]
    assert "ignition.config.url" not in " ".join(argv)
    assert "-boot" not in argv


@pytest.mark.parametrize(
    ("recorded", "device", "left"),
    [
        (None, "default", None),
        ("pxe", "pxe", "default"),  # one-time override, as IPMI boot flags
        ("disk", "disk", "disk"),
        ("", "default", ""),
    ],
)
def test_boot_device_override(
    tmp_path: Path, recorded: str | None, device: str, left: str | None
) -> None:
    if recorded is not None:
        (tmp_path / "boot").write_text(recorded)
    assert take_boot_device(tmp_path) == device
    after = (tmp_path / "boot").read_text() if (tmp_path / "boot").exists() else None
    assert after == left


def test_installed_reads_the_marker(tmp_path: Path) -> None:
    disk = tmp_path / "disk.img"
    assert not installed(disk)
    disk.write_bytes(bytes(1024))
    assert not installed(disk)
    disk.write_bytes(MARKER + b" mac=x\n")
    assert installed(disk)


def chassis(node: Path, *args: str) -> str:
    program = DATA / "chassis_control"
    argv = ["sh", str(program), str(node), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_chassis_control_protocol(tmp_path: Path) -> None:
    (tmp_path / "env").write_text("PYTHON=/bin/false\nRACK_NS=none\n")
    assert chassis(tmp_path, "get", "power", "boot") == "power:0\nboot:default\n"
    chassis(tmp_path, "set", "boot", "pxe")
    assert chassis(tmp_path, "get", "boot") == "boot:pxe\n"
    chassis(tmp_path, "set", "power", "0")  # already off: nothing to do
    chassis(tmp_path, "set", "reset", "1")  # off: a reset does nothing
    chassis(tmp_path, "set", "shutdown", "1")  # nor does an ACPI soft-off
    assert chassis(tmp_path, "get", "power") == "power:0\n"
    calls = [line.split(" ", 1)[1] for line in (tmp_path / "calls.log").read_text().splitlines()]
    assert calls == [
        "get power boot",
        "set boot pxe",
        "get boot",
        "set power 0",
        "set reset 1",
        "set shutdown 1",
        "get power",
    ]
