"""One node of ``tests.support.simrack``: firmware plus installer, with real clients.

Run by the sim's launcher in the node's own namespace as ``python -m tests.support.simnode
SIM_DIR MAC DEVICE`` (DEVICE: the boot device its BMC had at power-on). See simrack.py for the
rack around it, the faults a node can be given (``behaviour.json``) and the state it shares.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from tests.support.simrack import PREFIX, PXE_VENDOR

UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] || [ "$1" = renew ] || exit 0
printf 'ip=%s\\nsiaddr=%s\\nboot_file=%s\\nbootfile=%s\\n' "$ip" "$siaddr" "$boot_file" \
  "$bootfile" > "$LEASE_FILE"
"""


def busybox_tftp_get(server: str, name: str, out: Path, blksize: int) -> list[str]:
    """The argv of busybox's TFTP client fetching ``name`` into ``out`` (also the TFTP tests')."""
    return ["busybox", "tftp", "-g", "-r", name, "-l", str(out), "-b", str(blksize), server]


class Node:
    def __init__(self, sim_dir: Path, mac: str) -> None:
        self.sim_dir = sim_dir
        self.mac = mac
        sim = json.loads((sim_dir / "sim.json").read_text())
        self.flags: list[str] = sim["behaviour"].get(mac, [])
        self.work = sim_dir / "nodes" / mac.replace(":", "")
        self.work.mkdir(parents=True, exist_ok=True)
        self.disk = sim_dir / "nodes" / f"{mac}.disk"
        self.script = self.work / "udhcpc.sh"
        self.script.write_text(UDHCPC_SCRIPT)
        self.script.chmod(0o755)

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {self.mac} {text}", flush=True)

    def dhcp(self, extra: Sequence[str], tries: int = 20) -> dict[str, str]:
        lease_file = self.work / "lease"
        for _ in range(tries):
            lease_file.unlink(missing_ok=True)
            subprocess.run(["ip", "addr", "flush", "dev", "eth0"], check=False)
            result = subprocess.run(
                [
                    "busybox",
                    "udhcpc",
                    "-i",
                    "eth0",
                    "-n",
                    "-q",
                    "-f",
                    "-t",
                    "3",
                    "-T",
                    "1",
                    "-s",
                    str(self.script),
                    "-O",
                    "bootfile",
                    *extra,
                ],
                env={**os.environ, "LEASE_FILE": str(lease_file)},
                capture_output=True,
                check=False,
            )
            if result.returncode == 0 and lease_file.exists():
                lease = dict(
                    line.split("=", 1)
                    for line in lease_file.read_text().splitlines()
                    if "=" in line
                )
                subprocess.run(
                    ["ip", "addr", "add", f"{lease['ip']}/{PREFIX}", "dev", "eth0"], check=False
                )
                return lease
            time.sleep(1)
        raise SystemExit(f"{self.mac}: no DHCP lease")

    def get(self, url: str, output: str = "-") -> str:
        for attempt in range(60):
            result = subprocess.run(
                ["curl", "-fsS", "-m", "5", "-o", output, url],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                return result.stdout
            time.sleep(min(1 + attempt, 5))  # like boot.ipxe's back-off ladder
        raise SystemExit(f"{self.mac}: GET {url} failed")

    def post(self, url: str, event: str, message: str) -> None:
        body = json.dumps({"event": event, "message": message})
        for attempt in range(60):
            result = subprocess.run(
                [
                    "curl",
                    "-fsS",
                    "-m",
                    "5",
                    "-H",
                    "Content-Type: application/json",
                    "-d",
                    body,
                    url,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode == 0:
                return
            time.sleep(min(1 + attempt, 5))
        raise SystemExit(f"{self.mac}: POST {event} failed")

    def tftp(self, server: str, name: str) -> None:
        for _ in range(20):
            result = subprocess.run(
                busybox_tftp_get(server, name, self.work / "loader", 1468),
                capture_output=True,
                check=False,
                timeout=30,
            )
            if result.returncode == 0:
                return
            time.sleep(1)
        raise SystemExit(f"{self.mac}: TFTP {name} failed")

    def boot(self, device: str) -> None:
        installed = self.disk.exists()
        wants_pxe = device == "pxe" or (device == "default" and not installed)
        if "ignore-bootdev" in self.flags:
            wants_pxe = False
        if wants_pxe:
            self.pxe()
        elif installed or "ignore-bootdev" in self.flags:
            self.installed_os()
        else:
            self.say("no bootable device")

    def pxe(self) -> None:
        self.say("PXE boot")
        lease = self.dhcp(["-V", PXE_VENDOR, "-x", "0x5d:0000"])
        self.tftp(lease["siaddr"], lease["boot_file"] or lease["bootfile"])
        # iPXE: user class "iPXE" (option 77) and its option 175
        lease = self.dhcp(
            ["-V", PXE_VENDOR, "-x", "0x5d:0000", "-x", "0x4d:69505845", "-x", "0xaf:150101"]
        )
        first = self.get(lease["boot_file"] or lease["bootfile"])
        chain = re.search(r"chain --autofree (\S+)", first)
        if chain is None:
            raise SystemExit(f"{self.mac}: no chain line in boot.ipxe")
        url = (
            chain.group(1)
            .replace("${mac:hexhyp}", self.mac.replace(":", "-"))
            .replace("${platform}", "pcbios")
            .replace("${buildarch}", "i386")
        )
        url = re.sub(r"\$\{[^}]*\}", "", url)
        script = self.get(url)
        kernel = re.search(r"^kernel (\S+)(.*)$", script, re.M)
        if kernel is None:
            raise SystemExit(f"{self.mac}: no kernel line in:\n{script}")
        self.get(kernel.group(1), os.devnull)
        for initrd in re.findall(r"^initrd (?:--name \S+ )?(\S+)", script, re.M):
            self.get(initrd, os.devnull)
        ignition_url = re.search(r"ignition\.config\.url=(\S+)", kernel.group(2))
        if ignition_url is None:
            raise SystemExit(f"{self.mac}: no ignition.config.url")
        events_url = find_events_url(self.get(ignition_url.group(1)))
        self.post(events_url, "install-started", "installing Flatcar (simulated)")
        time.sleep(0.2)
        if "fail-install" in self.flags:
            self.post(events_url, "failed", "simulated: no install disk")
            self.say("install failed; staying up")
            return
        self.disk.write_text("flatcar\n")
        self.post(events_url, "installed", "Flatcar installed (simulated)")
        self.say("reboot")
        time.sleep(0.5)
        if "pxe-first" in self.flags:
            # firmware that tries the network before the disk on every boot: racker must
            # answer without a boot file now, or the node would be installed again
            lease = self.dhcp(["-V", PXE_VENDOR, "-x", "0x5d:0000"])
            if lease.get("boot_file") or lease.get("bootfile"):
                self.pxe()
                return
            self.say("no boot file offered: booting from disk")
        self.installed_os()

    def installed_os(self) -> None:
        self.say("booting the installed OS")
        self.dhcp([])
        self.say("up")


def find_events_url(ignition: str) -> str:
    """The phone-home URL in the install script embedded (as a data URL) in the Ignition."""
    config = json.loads(ignition)
    for item in config.get("storage", {}).get("files", []):
        source = item.get("contents", {}).get("source", "")
        if not source.startswith("data:"):
            continue
        meta, _, payload = source[5:].partition(",")
        text = (
            base64.b64decode(payload).decode(errors="replace")
            if meta.endswith(";base64")
            else urllib.parse.unquote(payload)
        )
        found = re.search(r"(https?://[^'\"\s]*/api/v1/events\?[^'\"\s]*)", text)
        if found:
            return found.group(1)
    raise SystemExit("no events URL in the Ignition config")


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit("usage: simnode SIM_DIR MAC DEVICE")
    Node(Path(argv[0]), argv[1]).boot(argv[2])


if __name__ == "__main__":
    main(sys.argv[1:])
