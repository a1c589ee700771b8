"""Benchmark the boot HTTP server against nginx on a veth link (both in the same run).

    .venv/bin/python bench/http.py [--size-mib 500] [--runs 7] [--rounds 20] [--burst 200]

1. Asset throughput: a generated file (never committed; in a temp dir) fetched with curl from
   a client namespace, from racker's /assets and from nginx (sendfile on, one worker), both
   serving the same file from the server namespace. Runs alternate; the median counts.
2. /ipxe latency: ``--burst`` requests fired at once over pre-opened keep-alive connections,
   ``--rounds`` times; each request timed from send to full response. Rendered by the real
   catalog (built-in Flatcar profiles). p50/p99 over all requests.

racker runs in its own process (``--serve``), the load generator too (``--load``), so neither
shares an event loop with the other. The server runs on the event loop ``racker serve`` picks
(``racker.serve.run_event_loop``: asyncio's own loop); a second racker process on uvloop (the
opt-in ``RACKER_EVENT_LOOP=uvloop``) gets the same asset and ``ab -k`` runs for comparison.
Needs root (namespaces), nginx-light and apache2-utils.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This file is named like the stdlib's ``http`` package: drop bench/ from the import path before
# anything (aiohttp) imports ``http``. None of the modules imported above does.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

SERVER_IP, CLIENT_IP = "10.99.0.1", "10.99.0.64"
RACKER_PORT, NGINX_PORT, UVLOOP_PORT = 8080, 8081, 8082
MAC = "52:54:00:aa:00:01"
PY = sys.executable


# -- the racker server process --------------------------------------------------------------


async def serve(host: str, port: int, assets: Path) -> None:
    from racker.model import Node
    from racker.profiles import NodeFacts, RenderContext, RenderSettings, load_catalog
    from racker.web import BootHttpServer

    settings = RenderSettings(ssh_authorized_keys=("ssh-ed25519 AAAAbench bench",))
    catalog = load_catalog(None, settings)
    node = Node(2, 1, MAC, "52:54:00:bb:00:01", None, "worker")

    def context_for(facts: NodeFacts) -> RenderContext:
        known = facts.mac == MAC
        return RenderContext(
            node=node if known else None,
            role="worker",
            installed=False,
            address=CLIENT_IP if known else None,
            server_url="",
            ignition_url="",
            events_url="",
            assets_url="",
            settings=settings,
        )

    server = BootHttpServer(host, port, catalog, context_for, key=os.urandom(32), assets_dir=assets)
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# -- the load generator process -------------------------------------------------------------


async def load(url: str, burst: int, rounds: int) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=burst, force_close=False)
    latencies: list[float] = []
    errors = 0
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> float | None:
            start = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                ok = resp.status == 200
            return time.perf_counter() - start if ok else None

        await asyncio.gather(*(one() for _ in range(burst)))  # open the connections
        for _ in range(rounds):
            for result in await asyncio.gather(*(one() for _ in range(burst))):
                if result is None:
                    errors += 1
                else:
                    latencies.append(result)
            await asyncio.sleep(0.05)
    print(json.dumps({"latencies": latencies, "errors": errors}))


# -- orchestration ---------------------------------------------------------------------------


NGINX_CONF = """\
worker_processes 1;
daemon off;
user root;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {ip}:{port};
        location /assets/ {{ alias {assets}/; }}
    }}
}}
"""


def curl_speed(ns: str, url: str) -> float:
    cmd = ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{speed_download}", url]
    out = subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True, timeout=600
    ).stdout.split()
    if out[0] != "200":
        raise RuntimeError(f"{url}: HTTP {out[0]}")
    return float(out[1])


def wait_ready(ns: str, url: str) -> None:
    for _ in range(100):
        cmd = ["ip", "netns", "exec", ns, "curl", "-sf", "-o", "/dev/null", url]
        if subprocess.run(cmd, check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{url} never answered")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ab(ns: str, url: str, requests: int, concurrency: int, keepalive: bool) -> dict[str, float]:
    """ApacheBench (C, one thread: a lighter client than Python) -> its summary figures."""
    with tempfile.NamedTemporaryFile(suffix=".csv") as csv:
        opts = ["-q", "-n", str(requests), "-c", str(concurrency), "-e", csv.name]
        cmd = ["ip", "netns", "exec", ns, "ab", *opts, *(["-k"] if keepalive else []), url]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        # -e writes "percent,ms" rows with fractional milliseconds (the summary rounds to 1 ms).
        rows = dict(line.split(",") for line in Path(csv.name).read_text().splitlines()[1:])
    found = {f"{q}%": float(rows[str(q)]) for q in (50, 90, 99, 100)}
    for line in out.splitlines():
        if line.startswith(("Failed requests:", "Non-2xx responses:", "Requests per second:")):
            found[line.split(":")[0]] = float(line.split(":")[1].split()[0])
    return found


def run(args: argparse.Namespace) -> None:
    from tests.support.netns import link

    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-http-") as tmpdir,
        link(server_ip=SERVER_IP, client_ip=CLIENT_IP) as lk,
    ):
        tmp = Path(tmpdir)
        assets = tmp / "assets"
        assets.mkdir()
        blob = assets / "flatcar_production_pxe_image.cpio.gz"
        chunk = os.urandom(1 << 20)
        with blob.open("wb") as f:
            for _ in range(1 if args.skip_assets else args.size_mib):
                f.write(chunk)
        (tmp / "nginx.conf").write_text(
            NGINX_CONF.format(tmp=tmp, ip=SERVER_IP, port=NGINX_PORT, assets=assets)
        )
        racker = lk.server.popen(
            [PY, "-P", __file__, "--serve", SERVER_IP, str(RACKER_PORT), str(assets), "default"],
            stdout=subprocess.PIPE,
        )
        other = ["--serve", SERVER_IP, str(UVLOOP_PORT), str(assets), "uvloop"]
        on_uvloop = lk.server.popen([PY, "-P", __file__, *other], stdout=subprocess.PIPE)
        nginx = lk.server.popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
        cli = lk.client.name
        try:
            racker_url = f"http://{SERVER_IP}:{RACKER_PORT}/assets/{blob.name}"
            nginx_url = f"http://{SERVER_IP}:{NGINX_PORT}/assets/{blob.name}"
            wait_ready(cli, f"http://{SERVER_IP}:{RACKER_PORT}/healthz")
            wait_ready(cli, f"http://{SERVER_IP}:{UVLOOP_PORT}/healthz")
            wait_ready(cli, nginx_url)
            speeds: dict[str, list[float]] = {"racker": [], "uvloop": [], "nginx": []}
            uvloop_url = f"http://{SERVER_IP}:{UVLOOP_PORT}/assets/{blob.name}"
            for _ in range(0 if args.skip_assets else args.runs):
                speeds["racker"].append(curl_speed(cli, racker_url))
                speeds["uvloop"].append(curl_speed(cli, uvloop_url))
                speeds["nginx"].append(curl_speed(cli, nginx_url))
            query = f"/ipxe?mac={MAC}&platform=efi&buildarch=x86_64"
            ipxe = f"http://{SERVER_IP}:{RACKER_PORT}{query}"
            n = args.burst * args.rounds
            # One render first (jinja2 compiles the templates on first use, ~0.4 s): the
            # figures are the steady state of a running server, not its first request.
            wait_ready(cli, ipxe)
            uvloop_ipxe = f"http://{SERVER_IP}:{UVLOOP_PORT}{query}"
            wait_ready(cli, uvloop_ipxe)
            keep = f"ab -k -c {args.burst} -n {n} (keep-alive)"
            # Each server's first burst after start is reported apart (200 connections are
            # accepted and set up during it).
            rows = [
                (f"{keep}, 1st run after start", ab(cli, ipxe, n, args.burst, True)),
                (keep, ab(cli, ipxe, n, args.burst, True)),
                (keep, ab(cli, ipxe, n, args.burst, True)),
                (f"{keep}, uvloop, 1st run", ab(cli, uvloop_ipxe, n, args.burst, True)),
                (f"{keep}, uvloop", ab(cli, uvloop_ipxe, n, args.burst, True)),
                (f"{keep}, uvloop", ab(cli, uvloop_ipxe, n, args.burst, True)),
                (
                    f"ab -c {args.burst} -n {n} (a connection each)",
                    ab(cli, ipxe, n, args.burst, False),
                ),
                ("ab -k -c 1 -n 1000 (one at a time)", ab(cli, ipxe, 1000, 1, True)),
            ]
            loaded = lk.client.run(
                PY, "-P", __file__, "--load", ipxe, str(args.burst), str(args.rounds), timeout=600
            )
            burst = json.loads(loaded.stdout)
        finally:
            for proc in (racker, on_uvloop, nginx):
                proc.terminate()
                proc.wait(timeout=10)
    report(args, speeds, rows, burst)


def report(
    args: argparse.Namespace,
    speeds: dict[str, list[float]],
    rows: list[tuple[str, dict[str, float]]],
    burst: dict[str, Any],
) -> None:
    mib = 1 << 20
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (at the start: {args.load_before})")
    if speeds["nginx"]:
        nginx = statistics.median(speeds["nginx"])
        print(f"\n{args.size_mib} MiB asset over veth, curl, median of {args.runs} runs\n")
        print("| server | MiB/s (median) | runs (MiB/s) | vs nginx |")
        print("|---|---:|---|---:|")
        for key, name in (
            ("racker", "racker (aiohttp FileResponse: sendfile)"),
            ("uvloop", "racker on uvloop (no sendfile: read + write)"),
            ("nginx", "nginx-light (sendfile on, 1 worker)"),
        ):
            med = statistics.median(speeds[key])
            runs = ", ".join(f"{s / mib:.0f}" for s in speeds[key])
            print(f"| {name} | {med / mib:.0f} | {runs} | {med / nginx:.2f}x |")
    print("\n/ipxe (rendered by the built-in Flatcar profiles), latency in ms\n")
    print("| load | req/s | failed | p50 | p90 | p99 | max |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        failed = int(r.get("Failed requests", 0) + r.get("Non-2xx responses", 0))
        print(
            f"| {name} | {r['Requests per second']:.0f} | {failed} | {r['50%']:.1f} "
            f"| {r['90%']:.1f} | {r['99%']:.1f} | {r['100%']:.1f} |"
        )
    lat = [x * 1e3 for x in burst["latencies"]]
    p50, p90, p99 = (percentile(lat, q) for q in (0.5, 0.9, 0.99))
    print(
        f"| aiohttp client: {args.rounds} bursts of {args.burst} at once | - "
        f"| {burst['errors']} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {max(lat):.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--skip-assets", action="store_true", help="only the /ipxe latency part")
    parser.add_argument("--serve", nargs=4, metavar=("HOST", "PORT", "ASSETS", "LOOP"))
    parser.add_argument("--load", nargs=3, metavar=("URL", "BURST", "ROUNDS"))
    args = parser.parse_args()
    if args.serve:
        from racker.serve import run_event_loop

        host, port, assets, loop = args.serve
        run_event_loop(
            serve(host, int(port), Path(assets)), loop=None if loop == "default" else loop
        )
    elif args.load:
        asyncio.run(load(args.load[0], int(args.load[1]), int(args.load[2])))
    else:
        args.load_before = f"{os.getloadavg()[0]:.1f}"
        run(args)


if __name__ == "__main__":
    main()
