"""Where a TFTP boot storm's server CPU goes: one server, storms of 20 curls, user vs system.

    .venv/bin/python bench/tftp_profile.py racker|racker-ports|dnsmasq [STORMS] [TRACER ...]

Runs one server of bench/tftp.py (same commands and addresses) in a throwaway namespace pair,
then STORMS (default 5) storms of 20 curls at blksize 1468 fetching an ipxe.efi-sized file,
unpinned, and prints the server's user and system CPU ticks (/proc/PID/stat) and CPU ms per
MiB. TRACER, if given, is a command started against the server first, ``{pid}`` replaced by
its pid and stopped with SIGINT at the end, e.g.
``perf stat -e context-switches,syscalls:sys_enter_sendto -p {pid}`` or
``perf record -F 4999 -o /tmp/perf.data -p {pid}``. Needs root, dnsmasq and curl.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "src")]

import tftp as bench  # noqa: E402
from tests.support.netns import link  # noqa: E402


def ticks(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main() -> int:
    which = sys.argv[1]
    storms = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    tracer = sys.argv[3:]
    bench.Pinning.on = False
    with (
        tempfile.TemporaryDirectory(prefix="racker-tftp-profile-") as tmp,
        link(bench.SERVER_IP, 24, bench.CLIENT_IP) as net,
    ):
        root, work = Path(tmp) / "root", Path(tmp) / "work"
        root.mkdir()
        work.mkdir()
        os.chmod(tmp, 0o755)  # noqa: S103 - dnsmasq reads the file below
        (root / "ipxe.efi").write_bytes(os.urandom(bench.IPXE_EFI_SIZE))
        ip = bench.ADDRESSES[which]
        if ip != bench.SERVER_IP:
            net.server.run("ip", "addr", "add", f"{ip}/24", "dev", net.srv_if)
        with bench.running(net.server, bench.server_commands(root, work)[which], ip) as proc:
            traced = None
            if tracer:
                traced = subprocess.Popen([a.replace("{pid}", str(proc.pid)) for a in tracer])
                time.sleep(1.0)
            user, system = ticks(proc.pid)
            started = time.monotonic()
            for _ in range(storms):
                bench.storm_case(20)(net, ip, root, work)
            wall = time.monotonic() - started
            user, system = (a - b for a, b in zip(ticks(proc.pid), (user, system), strict=True))
            if traced is not None:
                traced.send_signal(signal.SIGINT)
                traced.wait(30)
    mib = storms * 20 * bench.IPXE_EFI_SIZE / bench.MIB
    hz = os.sysconf("SC_CLK_TCK")
    print(
        f"{which}: {mib / wall:.1f} MiB/s, server user {user} + system {system} ticks "
        f"({(user + system) * 1000 / hz / mib:.2f} ms/MiB; {storms * 20} transfers, "
        f"{storms * 20 * (bench.IPXE_EFI_SIZE // 1468 + 1)} blocks)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
