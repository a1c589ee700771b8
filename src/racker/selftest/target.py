"""What the self-test tests, worked out from the rack's files as ``racker serve`` does."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from racker.dhcp.boot import BootSettings
from racker.dhcp.settings import core_settings
from racker.errors import EnvironmentProblem
from racker.rack.loading import Rack
from racker.tftp.admission import FileRefused
from racker.tftp.files import configured_roots
from racker.web.keyfile import load_or_create_key


@dataclass(frozen=True)
class Target:
    interface: str  # the PXE interface
    server_ip: str  # racker's address on it
    http_port: int
    key: bytes  # racker's HMAC key: the self-test's DHCP client proves itself with it
    boot: BootSettings  # the boot files racker gives each kind of client
    first_stages: dict[str, Path | str]  # TFTP name -> its file on disk, or why there is none

    @property
    def http_url(self) -> str:
        return f"http://{self.server_ip}:{self.http_port}"


def target_of(rack: Rack) -> Target:
    """The ``Target`` of a loaded rack (``racker.app.load.load_rack``); the key must exist
    (``racker serve`` creates it at start): a missing one is an environment problem."""
    key_path = rack.state_dir / "http.key"
    if not key_path.exists():
        raise EnvironmentProblem(
            f"no key at {key_path}: racker serve has not run with this state directory",
            "start racker serve first, with the same --state-dir/--config as this command",
        )
    if not os.access(key_path, os.R_OK):  # else the key's reader says to delete it: not here
        raise EnvironmentProblem(
            f"cannot read racker serve's key {key_path} (mode 0600, its owner's only)",
            "run racker selftest as root, as racker serve runs",
        )
    config = rack.config
    boot = core_settings(config, rack.plan, config.http.port, rack.oem.inventory.nodes).boot
    roots = configured_roots(config.tftp)
    stages: dict[str, Path | str] = {}
    for name in (boot.bios_loader, boot.uefi_loader, boot.arm64_loader):
        if not name or name in stages:
            continue
        try:
            stages[name] = roots.resolve(name)
        except FileRefused as exc:
            stages[name] = str(exc)
    return Target(
        interface=rack.interface.name,
        server_ip=str(rack.plan.server),
        http_port=config.http.port,
        key=load_or_create_key(key_path),
        boot=boot,
        first_stages=stages,
    )
