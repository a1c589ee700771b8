"""Run racker's DHCP server alone (tests and bench/dhcp.py only): ``python -m
tests.integration.dhcp.runner SPEC.json`` inside a namespace. Prints "ready" once serving;
SIGTERM closes it cleanly (flushing leases). Events go to ``events`` (JSON lines) if given,
and, with ``event_log``, through ``racker serve``'s EventHub into the store's event log."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from racker.app.hub import EventHub
from racker.dhcp.core import build_core
from racker.dhcp.server import DhcpServer
from racker.dhcp.settings import DhcpSettings, core_settings
from racker.events import Event
from racker.model import AddressRange, NetworkPlan
from racker.rack.config import BootConfig, Config, DhcpConfig, HttpConfig, RelaySegment
from racker.store import Store
from racker.store_writer import StoreWriter

IP = ipaddress.IPv4Address


def build(spec: dict[str, Any]) -> tuple[Config, NetworkPlan, dict[str, ipaddress.IPv4Address]]:
    relays = [
        RelaySegment(
            ipaddress.IPv4Network(r["subnet"]),
            AddressRange.parse(r["pool"]),
            IP(r["gateway"]) if r.get("gateway") else None,
        )
        for r in spec.get("relays", [])
    ]
    pool = AddressRange.parse(spec["pool"]) if spec.get("pool") else None
    caching = {"cache_threshold": spec["cache_threshold"]} if "cache_threshold" in spec else {}
    config = Config(
        dhcp=DhcpConfig(
            unknown_clients=spec.get("unknown_clients", "ignore"),
            pool=pool,
            relays=relays,
            **caching,
        ),
        boot=BootConfig(arm64_loader=spec.get("arm64_loader")),
        http=HttpConfig(port=spec.get("http_port", 8080)),
    )
    plan = NetworkPlan(
        subnet=ipaddress.IPv4Network(spec["subnet"]),
        server=IP(spec["server"]),
        nodes=AddressRange.parse(spec.get("nodes", "10.99.0.64-10.99.0.127")),
        bmcs=AddressRange.parse(spec.get("bmcs", "10.99.0.128-10.99.0.191")),
        pool=pool,
        gateway=IP(spec["gateway"]) if spec.get("gateway") else None,
    )
    reservations = {mac: IP(addr) for mac, addr in spec.get("reservations", {}).items()}
    return config, plan, reservations


async def serve(spec: dict[str, Any]) -> None:
    config, plan, reservations = build(spec)
    store = Store.open(Path(spec["state_dir"])) if spec.get("state_dir") else None
    # As `racker serve`: leases (committed before their ACKs) and events written off the loop.
    writer = None
    if store is not None:
        writer = StoreWriter(store.path, "FULL" if spec.get("lease_sync") else "NORMAL")
        writer.start()
    events_file = None
    if spec.get("events"):  # closed at the end of serve()
        events_file = open(spec["events"], "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    hub = None
    if store is not None and spec.get("event_log"):  # the rack's machines: the reserved MACs
        hub = EventHub(store, known=reservations.__contains__, writer=writer)

    def publish(event: Event) -> None:
        if events_file is not None:
            events_file.write(json.dumps(event.to_dict()) + "\n")
        if hub is not None:
            hub.publish(event)

    core = build_core(
        DhcpSettings(core_settings(config, plan), reservations),
        store.leases() if store is not None else (),
        keeps=hub.keeps if hub is not None and events_file is None else None,
    )
    tuning = {k: spec[k] for k in ("poll_interval", "commit_window") if k in spec}
    server = DhcpServer(spec["interface"], core, publish, writer, **tuning)
    await server.start()
    if hub is not None:
        hub.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.close()
    if hub is not None:
        await hub.close()
    if events_file is not None:
        events_file.close()
    if writer is not None:
        writer.close()
    if store is not None:
        store.close()
    print(
        f"closed received={server.received} sent={server.sent} dropped={server.dropped}", flush=True
    )


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # INFO (the tests read the DHCP log lines); bench/dhcp.py: WARNING, as `racker serve`.
    logging.basicConfig(level=spec.get("log_level", "INFO"), stream=sys.stderr)
    if spec.get("cprofile"):  # bench/dhcp.py --cprofile FILE: the server's own profile
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            asyncio.run(serve(spec))
        finally:
            profiler.disable()
            profiler.dump_stats(spec["cprofile"])
        return
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
