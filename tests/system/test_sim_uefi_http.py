"""End to end: OVMF's own UEFI HTTP Boot (no iPXE option ROM: ``virtio-net-pci,romfile=``)
through racker, on a simulated rack of one ``uefi-http`` node (``racker sim up --firmware
uefi-http``, whose racker.yaml sets ``boot.uefi_http``).

OVMF tries PXEv4 first: racker answers it with an address and no boot file, so OVMF falls
through (after PXEv6, which nothing answers) to its HTTPv4 entry, whose ``HTTPClient`` DHCP
gets ``http://SERVER:PORT/ipxe.efi``; OVMF fetches that from racker's HTTP server (HEAD, then
GET), iPXE runs and the node is provisioned as every UEFI node is. No TFTP at all.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from racker.errors import RackerError
from racker.sim.demo import racker_argv
from racker.sim.guest import guest_files
from racker.sim.rack import namespaces, sim_down, sim_up
from racker.sim.spec import plan_sim
from racker.sim.vm import SERIAL_LOG, installed
from tests.support.netns import can_use_netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not can_use_netns(), reason="needs root and network namespaces"),
]
# OVMF under TCG: PXEv4 with no boot file, PXEv6 timing out, HTTP boot, then the install and
# the reboot into the installed system.
BOOTSTRAP_TIMEOUT = 220


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_ovmf_boots_by_uefi_http_and_is_provisioned(tmp_path: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None or shutil.which("ipmi_sim") is None:
        pytest.skip("qemu-system-x86 / openipmi missing (scripts/setup-host)")
    try:
        guest_files()
    except RackerError as exc:
        if os.environ.get("CI"):
            raise  # CI must run the end-to-end suite, not skip it
        pytest.skip(f"no sim guest: {exc.message}")
    name = "h" + secrets.token_hex(3)
    spec = plan_sim(name, 1, "uefi-http", root=tmp_path)
    node = spec.nodes[0]
    try:
        sim_up(spec)
        assert "uefi_http: true" in spec.config_path.read_text()
        started = time.monotonic()
        try:
            done = subprocess.run(
                racker_argv(spec, "bootstrap", "--on-failure", "exclude", "--stagger", "0"),
                capture_output=True,
                text=True,
                timeout=BOOTSTRAP_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            serial = (spec.node_dir(node) / SERIAL_LOG).read_text(errors="replace")
            pytest.fail(
                f"no ready node in {BOOTSTRAP_TIMEOUT} s:\n{exc.stdout!r}\n{serial[-4000:]}"
            )
        took = time.monotonic() - started
        serial = (spec.node_dir(node) / SERIAL_LOG).read_text(errors="replace")
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{serial[-4000:]}"
        print(f"uefi-http node ready after {took:.0f} s of racker bootstrap")

        status = subprocess.run(
            racker_argv(spec, "status", "--json"), capture_output=True, text=True, check=True
        )
        assert [r["state"] for r in json.loads(status.stdout)] == ["ready"]
        assert installed(spec.node_dir(node) / "disk.img")
        assert "power on: uefi-http boot from pxe" in serial
        assert "installer fetched ignition" in serial
        # OVMF's own HTTP boot ran, not PXE: its entry, then iPXE from the loader it fetched.
        assert re.search(r'starting Boot\d+ "UEFI HTTPv4', serial), serial[-3000:]
        assert "PXE-E16: No valid offer received." in serial  # PXEv4: no boot file for it
        deadline = time.monotonic() + 30  # the node's console may lag racker's "ready"
        while "installed system up" not in serial and time.monotonic() < deadline:
            time.sleep(1)
            serial = (spec.node_dir(node) / SERIAL_LOG).read_text(errors="replace")
        assert "installed system up" in serial, serial[-3000:]

        logs = list((spec.state_dir / "bootstrap" / node.hostname).glob("attempt-*.jsonl"))
        assert len(logs) == 1, logs  # the first attempt succeeded
        events = _events(logs[0])
        offers = [
            (e["client_kind"], e["boot_file"])
            for e in events
            if e["source"] == "dhcp" and e.get("direction") == "out"
        ]
        url = f"http://{spec.server}:8080/ipxe.efi"
        # OVMF's PXEv4 got an address without a file; its HTTP boot the loader's URL.
        assert ("uefi", None) in offers, offers
        assert ("uefi-http", url) in offers, offers
        assert not [o for o in offers if o[0] == "uefi" and o[1]], offers
        asked = [
            (e["ts"], e["client_kind"])
            for e in events
            if e["source"] == "dhcp" and e["kind"] == "discover"
        ]
        pxe = min(ts for ts, kind in asked if kind == "uefi")
        http = min(ts for ts, kind in asked if kind == "uefi-http")
        print(f"OVMF: PXEv4 DISCOVER to HTTPv4 DISCOVER {http - pxe:.1f} s")
        size = (spec.root / "ipxe" / "ipxe.efi").stat().st_size
        fetched = [
            (e["method"], e["status"], e["bytes"])
            for e in events
            if e["source"] == "http" and e.get("path") == "/ipxe.efi"
        ]
        assert ("GET", 200, size) in fetched, fetched
        assert not [e for e in events if e["source"] == "tftp"]
    finally:
        sim_down(name, tmp_path)
    assert not {spec.mgmt_ns, spec.rack_ns} & namespaces()
    assert not (tmp_path / name).exists()
