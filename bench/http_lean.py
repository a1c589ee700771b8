"""Experiment: how fast could /ipxe bursts be without aiohttp's per-request work?

    .venv/bin/python bench/http_lean.py [--rounds 20] [--burst 200]

Not racker's server. A minimal asyncio.Protocol (HTTP/1.1 keep-alive, GET only, no error
handling) answers ``/ipxe`` through racker's own ``BootService`` (render cache, tokens, the
built-in Flatcar catalog: exactly what the aiohttp handler calls) and anything else with
"ok". The load is the burst client of ``bench/http.py`` (200 kept-alive connections, each
fetching ``/boot.ipxe`` first, then 200 ``/ipxe`` at once, 20 times), in the same veth set-up.
It measures what a lean path in front of aiohttp would buy for the boot scripts (see
docs/benchmarks.md, ## HTTP): the floor of the protocol work, cached answers, first renders.
Needs root (namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path[:0] = [str(REPO), str(REPO / "src")]

SERVER_IP, CLIENT_IP, PORT = "10.99.0.1", "10.99.0.64", 8090
PY = sys.executable
BENCH_HTTP = REPO / "bench" / "http.py"


class _Request:
    """The attributes of an aiohttp request that ``BootService`` reads for /ipxe."""

    def __init__(self, target: str, host: str, remote: str) -> None:
        from yarl import URL

        self.rel_url = URL(target, encoded=True)
        self.query = self.rel_url.query
        self.scheme = "http"
        self.host = host
        self.remote = remote


def serve() -> None:
    from racker.model import Node
    from racker.profiles import NodeFacts, RenderContext, RenderSettings, load_catalog
    from racker.web.handlers import Ask, BootService

    settings = RenderSettings(ssh_authorized_keys=("ssh-ed25519 AAAAbench bench",))
    nodes: dict[str, Node] = {}

    def context_for(facts: NodeFacts) -> RenderContext:
        mac = facts.mac or ""
        node = nodes.get(mac)
        if node is None:
            node = nodes[mac] = Node(len(nodes) + 2, len(nodes) + 1, mac, "02" + mac[2:], None, "w")
        return RenderContext(node, "worker", False, CLIENT_IP, "", "", "", "", settings)

    svc = BootService(
        catalog=load_catalog(None, settings),
        context_for=context_for,
        key=os.urandom(32),
        assets_dir=REPO,
    )
    host = f"{SERVER_IP}:{PORT}"

    def ipxe(target: str, remote: str) -> bytes:
        request: Any = _Request(target, host, remote)
        ask = Ask(request.query, request.rel_url.raw_query_string, f"http://{host}", remote)
        return svc.ipxe_answer(ask).text.encode()

    class Lean(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.remote = transport.get_extra_info("peername")[0]
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            buf = self.buf + data if self.buf else data
            out = []
            while (end := buf.find(b"\r\n\r\n")) >= 0:
                head, buf = buf[:end], buf[end + 4 :]
                target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
                body = ipxe(target, self.remote) if target.startswith("/ipxe?") else b"ok\n"
                out.append(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
            self.buf = buf
            if out:
                self.transport.write(b"".join(out))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(Lean, SERVER_IP, PORT, backlog=1024)
        ipxe("/ipxe?mac=52-54-00-00-00-01", CLIENT_IP)  # jinja2 compiles on first use
        gc.freeze()  # as BootHttpServer does once it listens
        print("ready", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def run(args: argparse.Namespace) -> None:
    from tests.support.netns import link

    with link(server_ip=SERVER_IP, client_ip=CLIENT_IP) as lk:
        server = lk.server.popen([PY, "-P", __file__, "--serve"], stdout=subprocess.PIPE)
        try:
            assert server.stdout is not None
            server.stdout.readline()
            print(f"load average at the start: {os.getloadavg()[0]:.1f}\n")
            print(
                "| bursts of 200 at once, kept-alive | p50 | p99 | p99 per burst: median (range) |"
            )
            print("|---|---:|---:|---|")
            for name, path, macs in (
                ('`/healthz` ("ok"): the protocol floor', "/healthz", "fresh"),
                ("`/ipxe`, first renders (new MACs each burst)", "/ipxe", "fresh"),
                ("`/ipxe`, the same nodes again (render cache)", "/ipxe", "same"),
            ):
                url = f"http://{SERVER_IP}:{PORT}{path}"
                loaded = lk.client.run(
                    *(PY, "-P", str(BENCH_HTTP), "--load", url, str(args.burst)),
                    *(str(args.rounds), macs),
                    timeout=600,
                )
                result = json.loads(loaded.stdout)
                if result["errors"]:
                    raise RuntimeError(f"{name}: {result['errors']} failed requests")
                rounds = [sorted(x * 1e3 for x in r) for r in result["latencies"]]
                every = sorted(x for r in rounds for x in r)
                per = sorted(r[round(0.99 * (len(r) - 1))] for r in rounds)
                print(
                    f"| {name} | {every[len(every) // 2]:.1f} "
                    f"| {every[round(0.99 * (len(every) - 1))]:.1f} "
                    f"| {statistics.median(per):.1f} ({per[0]:.1f}-{per[-1]:.1f}) |"
                )
            print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
        finally:
            server.terminate()
            server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
    else:
        run(args)


if __name__ == "__main__":
    main()
