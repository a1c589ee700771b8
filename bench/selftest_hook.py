"""Benchmark: what the self-test hook (``racker.dhcp.selftest.SelfTestGate``) costs the DHCP
core's hot path, per message, for messages without the self-test option.

    .venv/bin/python bench/selftest_hook.py [--rounds 9] [--clients 1000] [--passes 5]

``DhcpCore.handle`` for --clients relayed pool clients (a DISCOVER and a REQUEST each, as
perfdhcp sends them), with the self-test gate installed (as ``racker serve`` builds the core;
racker) and without it (``selftest=None``; the peer, since dnsmasq has no self-test to compare
with). Both take the hook's first test (option 243 in the message); with a gate nothing more
happens for a message without it. Each round builds a fresh core per mode, answers every
message once (the memo warms), then times --passes passes over all messages; ns per message.
Modes alternate within a round, the order alternating per round. In-process, no sockets.

Prints a markdown table and one line
``SUMMARY selftest_hook.core_ns_per_message racker=... nogate=... ratio=... spread=...
rounds=...`` (medians; ratio: median of the per-round ratios gate/none; spread: their
min-max). A default run takes a few seconds. Run it under the shared lock:
``flock /tmp/racker-bench.lock .venv/bin/python bench/selftest_hook.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In place of this script's directory: bench/http.py would shadow the standard library's http.
sys.path[:1] = [str(REPO), str(REPO / "src")]

from scapy.compat import raw  # noqa: E402
from scapy.layers.dhcp import BOOTP, DHCP  # noqa: E402
from tests.unit.dhcp.corekit import BMC_MAC, NODE, PLAN, RESERVATIONS, config  # noqa: E402

from racker.dhcp.core import DhcpCore, ReceiveInfo  # noqa: E402
from racker.dhcp.selftest import SelfTestGate  # noqa: E402
from racker.dhcp.settings import core_settings  # noqa: E402
from racker.model import BootAction  # noqa: E402

RELAYED = ReceiveInfo(relayed=True)
NOW = 1.8e9


def messages(clients: int) -> list[bytes]:
    """A relayed DISCOVER and REQUEST of each client, none with the self-test option."""
    out = []
    for i in range(clients):
        mac = bytes([2, 0, 0, 0, i >> 8 & 255, i & 255])
        for mtype, extra in (
            (1, []),
            (3, [("requested_addr", f"10.98.1.{i % 10}"), ("server_id", "10.99.0.1")]),
        ):
            packet = BOOTP(op=1, hops=1, xid=i, giaddr="10.98.0.2", chaddr=mac + bytes(10))
            out.append(raw(packet / DHCP(options=[("message-type", mtype), *extra, "end"])))
    return out


def core(gate: SelfTestGate | None) -> DhcpCore:
    settings = core_settings(
        config("pool", relay_pool="10.98.1.0-10.98.8.255"), PLAN, http_port=8080, nodes=[NODE]
    )
    return DhcpCore(settings, RESERVATIONS, (), lambda _m: BootAction.PXE, [BMC_MAC], selftest=gate)


def ns_per_message(gate: SelfTestGate | None, msgs: list[bytes], passes: int) -> float:
    c = core(gate)
    for data in msgs:  # warm: the memo and the leases
        c.handle(data, RELAYED, NOW)
    start = time.perf_counter()
    for p in range(passes):
        for data in msgs:
            c.handle(data, RELAYED, NOW + p)
    return (time.perf_counter() - start) / (passes * len(msgs)) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    if args.rounds < 1 or args.passes < 1 or not 1 <= args.clients <= 2000:
        parser.error("--rounds >= 1, --passes >= 1, --clients 1-2000 (the relay pool's size)")
    msgs = messages(args.clients)
    got: dict[str, list[float]] = {"gate": [], "none": []}
    ratios = []
    for r in range(args.rounds):
        this: dict[str, float] = {}
        for name in ("gate", "none") if r % 2 == 0 else ("none", "gate"):
            gate = SelfTestGate(b"k" * 32) if name == "gate" else None
            this[name] = ns_per_message(gate, msgs, args.passes)
            got[name].append(this[name])
        ratios.append(this["gate"] / this["none"])
    gate, none, ratio = (statistics.median(v) for v in (got["gate"], got["none"], ratios))
    print(f"### DhcpCore.handle ns/message, {args.clients} relayed clients, {args.rounds} rounds\n")
    print("| gate | median ns/message | min-max |")
    print("|---|---|---|")
    for name, values in got.items():
        print(f"| {name} | {statistics.median(values):.0f} | {min(values):.0f}-{max(values):.0f} |")
    print(f"\nratio gate/none per round: median {ratio:.3f}, {min(ratios):.3f}-{max(ratios):.3f}\n")
    print(
        f"SUMMARY selftest_hook.core_ns_per_message racker={gate:.0f} nogate={none:.0f}"
        f" ratio={ratio:.3f} spread={min(ratios):.3f}-{max(ratios):.3f} rounds={len(ratios)}"
    )


if __name__ == "__main__":
    main()
