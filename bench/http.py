"""Benchmark the boot HTTP server against nginx on a veth link (both in the same run).

    .venv/bin/python bench/http.py [--size-mib 500] [--runs 7] [--rounds 20] [--burst 200]
    .venv/bin/python bench/http.py --assets-unpinned [--asset-rounds 15] [--parallel 8]
        [--parallel-mib 200] [--asset-servers racker,stock,nginx]

1. Asset throughput: a generated file (never committed; in a temp dir) fetched with curl from
   a client namespace, from racker's /assets and from nginx (sendfile on, one worker), both
   serving the same file from the server namespace. Runs alternate; the median counts.
2. /ipxe latency: ``--burst`` requests fired at once over pre-opened keep-alive connections,
   ``--rounds`` times; each request timed from send to full response. Rendered by the real
   catalog (built-in Flatcar profiles). p50/p99 over all requests, and p99 per burst.

``--assets-unpinned`` runs only the assets, nothing pinned (server and curl share the cores, as
on a management node doing other work): racker as racker serve runs (its body sender,
racker.web.sendfile), "stock" (the same server with aiohttp's FileResponse body path, asyncio's
loop.sendfile: the reference) and nginx, in interleaved rounds of one ``--size-mib`` download
and ``--parallel`` downloads of ``--parallel-mib`` at once; per server and case MiB/s and the
server's CPU ms per MiB, one SUMMARY line per metric, then each server's system calls and
context switches per MiB (``perf stat``).

racker runs in its own processes (``--serve``), the load generator too (``--load``), so none
shares an event loop with another. The main racker server runs as ``racker serve`` runs it:
asyncio's own loop (``racker.app.run.run_event_loop``), the fast path for /boot.ipxe and /ipxe,
and its inventory's scripts (the MACs of the "fresh" bursts) rendered ahead. A second one
runs on uvloop (the opt-in ``RACKER_EVENT_LOOP=uvloop``; asset and ``ab`` runs), a third
without the fast path and without rendering ahead (aiohttp answers everything, renders on
request: the reference), a fourth without the fast path but with its scripts rendered ahead
(what the goal's bursts give if the fast path goes). Needs root (namespaces), nginx-light and
apache2-utils.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# This file is named like the stdlib's ``http`` package: drop bench/ from the import path before
# anything (aiohttp) imports ``http``. None of the modules imported above does.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

SERVER_IP, CLIENT_IP = "10.99.0.1", "10.99.0.64"
RACKER_PORT, NGINX_PORT, UVLOOP_PORT, AIOHTTP_PORT, NOFAST_PORT = 8080, 8081, 8082, 8083, 8084
MAC = "52:54:00:aa:00:01"
PY = sys.executable
# What nginx answers for /ipxe in the reference bursts: as long as racker's rendered script for
# these nodes (467 bytes), in nginx's escaped form (\n is a newline in a return text).
FIXED_SCRIPT = "#!ipxe\\n" + "#" * 454 + "\\nboot\\n"


# The /ipxe bursts: (key, server, MACs, what). "racker" runs as racker serve does (fast path,
# inventory rendered ahead); "aiohttp" is racker without either (every request through aiohttp,
# rendered on request); "nofast" renders ahead but has no fast path (aiohttp answers every
# request from the scripts rendered ahead); nginx answers a fixed script of the same length.
BURSTS = (
    ("fresh", "racker", "fresh", "each node's first request: scripts rendered ahead"),
    ("unlisted", "racker", "unlisted", "MACs not rendered ahead: rendered on request"),
    ("same", "racker", "same", "the same nodes again"),
    ("nofast", "nofast", "fresh", "racker without the fast path, scripts rendered ahead"),
    ("aiohttp", "aiohttp", "fresh", "racker without the fast path, rendered on request"),
    ("healthz", "healthz", "fresh", "racker's /healthz: no rendering, through aiohttp"),
    ("nginx", "nginx", "fresh", "nginx answering a fixed 467-byte script: the machine's floor"),
)


# Servers on CPU 0, clients (curl, ab, the burst client) on CPU 1, when there are two: every
# server then runs under the same conditions. Left to the scheduler, a server and curl shared
# a core in some runs and not in others: racker's asset medians came out 0.86x nginx unpinned
# and 0.96-1.17x pinned, back to back (see docs/benchmarks.md). ``--no-pin`` turns it off.
SERVER_CPU, CLIENT_CPU = "0", "1"


class Pinning:
    on = (os.cpu_count() or 1) >= 2


def pinned(cpu: str, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if Pinning.on else cmd


# -- the racker server process --------------------------------------------------------------


def bench_context() -> tuple[Any, Any]:
    """The render settings and the ``context_for`` of every racker server in this script.

    Every MAC is an inventory node (the bursts use new MACs each round), looked up the way
    racker serve's NodeDirectory does: one dict access.
    """
    from racker.model import Node
    from racker.profiles import NodeFacts, RenderContext, RenderSettings

    settings = RenderSettings(ssh_authorized_keys=("ssh-ed25519 AAAAbench bench",))
    nodes: dict[str, Node] = {}

    def context_for(facts: NodeFacts) -> RenderContext:
        mac = facts.mac or ""
        node = nodes.get(mac)
        if node is None:
            bmc = "02" + mac[2:]
            node = nodes[mac] = Node(len(nodes) + 2, len(nodes) + 1, mac, bmc, None, "worker")
        return RenderContext(node, "worker", False, CLIENT_IP, "", "", "", "", settings)

    return settings, context_for


async def serve(
    host: str,
    port: int,
    assets: Path,
    fast_path: bool,
    ahead: bool,
    inventory: list[str],
    stock_assets: bool = False,
    chunk: int = 0,
) -> None:
    """A racker HTTP server as ``racker serve`` runs it: the fast path for the boot scripts
    and ``inventory``'s scripts rendered ahead (``fast_path=False``: aiohttp answers every
    request; ``ahead=False``: every request renders; ``stock_assets``: asset bodies sent by
    aiohttp's FileResponse through asyncio's ``loop.sendfile``, not ``racker.web.sendfile``)."""
    from racker.profiles import load_catalog
    from racker.web import BootHttpServer

    settings, context_for = bench_context()
    catalog = load_catalog(None, settings)
    if chunk:
        import racker.web.sendfile

        racker.web.sendfile._MAX_COUNT = chunk
    if stock_assets:  # the reference: asset bodies through aiohttp's own loop.sendfile
        from aiohttp import web

        from racker.web.handlers import AssetResponse

        AssetResponse._sendfile = web.FileResponse._sendfile  # type: ignore[method-assign]
    server = BootHttpServer(
        host,
        port,
        catalog,
        context_for,
        key=os.urandom(32),
        assets_dir=assets,
        fast_path=fast_path,
        inventory=(lambda: inventory) if ahead else None,
    )
    await server.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def render_cost(count: int = 1000, mac_groups: int = 0) -> tuple[float, float]:
    """µs per /ipxe handler call in-process: (first render of a new node, cached answer).

    The bench server's context and catalog, requests built by aiohttp's test helper; no
    sockets, so this is racker's own cost per request without aiohttp's protocol work. With
    ``mac_groups``, the built-in catalog plus that many groups selecting one MAC each (the
    matchbox habit of a group per machine), for the first nodes asked.
    """
    import shutil

    from aiohttp.test_utils import make_mocked_request

    import racker
    from racker.profiles import load_catalog
    from racker.web.handlers import BootService

    settings, context_for = bench_context()
    macs = _macs(1, count + 10)
    with tempfile.TemporaryDirectory(prefix="racker-bench-groups-") as tmp:
        profiles = None
        if mac_groups:
            profiles = Path(tmp) / "profiles"
            shutil.copytree(Path(racker.__file__).parent / "data" / "profiles", profiles)
            for i, mac in enumerate(macs[10 : 10 + mac_groups]):
                group = f'profile: flatcar-install\nselectors: {{mac: "{mac}"}}\n'
                (profiles / "groups" / f"node{i}.yaml").write_text(group)
        catalog = load_catalog(profiles, settings)

    svc = BootService(catalog=catalog, context_for=context_for, key=os.urandom(32), assets_dir=REPO)
    host = f"{SERVER_IP}:{RACKER_PORT}"
    requests = [
        make_mocked_request("GET", _ipxe_request(host, "/ipxe", mac).split()[1].decode(),
                            headers={"Host": host})
        for mac in macs
    ]  # fmt: skip

    async def answer(batch: list[Any]) -> float:
        started = time.perf_counter()
        for request in batch:
            response = await svc.ipxe(request)
            assert response.status == 200
        return (time.perf_counter() - started) / len(batch) * 1e6

    loop = asyncio.new_event_loop()
    loop.run_until_complete(answer(requests[:10]))  # jinja2 compiles on first use
    first = loop.run_until_complete(answer(requests[10:]))
    cached = loop.run_until_complete(answer(requests[10:]))
    loop.close()
    return first, cached


# -- the load generator process -------------------------------------------------------------


def inventory(rounds: int, burst: int) -> list[str]:
    """The bench servers' inventory: the MACs of every "fresh" burst (not the "unlisted")."""
    return [mac for round_ in range(rounds) for mac in _macs(round_, burst)]


def _macs(round_: int, burst: int) -> list[str]:
    """Distinct node MACs for one round (rounds never share a MAC)."""
    return [
        f"52:54:{round_ >> 8:02x}:{round_ & 255:02x}:{i >> 8:02x}:{i & 255:02x}"
        for i in range(burst)
    ]


def _ipxe_request(host: str, path: str, mac: str) -> bytes:
    # What /boot.ipxe makes iPXE ask (racker.web.boot_script), over its kept-alive connection.
    query = (
        f"mac={mac.replace(':', '-')}&uuid=4c4c4544-0042-{mac[-5:].replace(':', '')}-8010-b4c04f"
        f"&serial=SN{mac[-5:].replace(':', '')}&hostname=&platform=efi&buildarch=x86_64"
    )
    request = f"GET {path}?{query} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
    return request.encode()


def _response_done(buf: bytearray) -> int | None:
    """The HTTP status once ``buf`` holds a whole response (Content-Length framed), else None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).lower()
    at = head.find(b"content-length:")
    length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
    if len(buf) < end + 4 + length:
        return None
    return int(head[9:12])


def load(url: str, burst: int, rounds: int, macs: str = "fresh") -> None:
    """Fire ``burst`` /ipxe requests at once, each on its own kept-alive connection.

    This is a rack of ``burst`` iPXE clients that fetched /boot.ipxe (iPXE sends Connection:
    keep-alive and reuses the connection) and now chain to /ipxe at the same moment.
    ``macs``: "fresh", each round new MACs of the servers' inventory (each node's first
    request); "unlisted", new MACs that are not in the inventory (so never rendered ahead:
    each request renders); "same", every round the first round's nodes again. A lean epoll
    client (no asyncio, requests pre-built), so the client's own overhead
    stays out of the figures: each latency is from that request's send() to the end of its
    response.
    """
    import select
    import socket
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    socks = []
    for _ in range(burst):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    # Each connection first fetches /boot.ipxe, as iPXE does (not timed).
    boot = f"GET /boot.ipxe HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    for sock in socks:
        sock.sendall(boot)
        buf = bytearray()
        while _response_done(buf) is None:
            buf += sock.recv(65536)
        sock.setblocking(False)
    poller = select.epoll()
    by_fd = {sock.fileno(): i for i, sock in enumerate(socks)}
    for sock in socks:
        poller.register(sock.fileno(), select.EPOLLIN)
    latencies: list[list[float]] = []
    errors = 0
    perf = time.perf_counter
    for round_ in range(rounds):
        requests = [
            _ipxe_request(parts.netloc, parts.path, mac)
            for mac in _macs({"fresh": round_, "same": 0}.get(macs, 1000 + round_), burst)
        ]
        bufs = [bytearray() for _ in socks]
        sent = [0.0] * burst
        took = [0.0] * burst
        for i, sock in enumerate(socks):
            sent[i] = perf()
            sock.send(requests[i])
        pending = burst
        while pending:
            for fd, _ev in poller.poll(5.0):
                i = by_fd[fd]
                data = socks[i].recv(65536)
                if not data:
                    raise RuntimeError("the server closed a kept-alive connection")
                bufs[i] += data
                status = _response_done(bufs[i])
                if status is not None and not took[i]:
                    took[i] = perf() - sent[i]
                    pending -= 1
                    errors += status != 200
        latencies.append(took)
        time.sleep(0.05)
    for sock in socks:
        sock.close()
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
        keepalive_requests 100000;
        location /assets/ {{ alias {assets}/; }}
        # The floor for the /ipxe bursts: a fixed answer as long as a rendered script.
        location = /ipxe {{ return 200 "{script}"; }}
    }}
}}
"""


def curl_speed(ns: str, url: str) -> float:
    cmd = pinned(
        CLIENT_CPU, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{speed_download}", url]
    )
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
        ab = pinned(CLIENT_CPU, ["ab", *opts, *(["-k"] if keepalive else []), url])
        cmd = ["ip", "netns", "exec", ns, *ab]
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
            NGINX_CONF.format(
                tmp=tmp, ip=SERVER_IP, port=NGINX_PORT, assets=assets, script=FIXED_SCRIPT
            )
        )
        sizes = ["--rounds", str(args.rounds), "--burst", str(args.burst)]

        def racker_server(port: int, loop: str, mode: str) -> subprocess.Popen[bytes]:
            serve = ["--serve", SERVER_IP, str(port), str(assets), loop, mode, *sizes]
            return lk.server.popen(
                pinned(SERVER_CPU, [PY, "-P", __file__, *serve]), stdout=subprocess.PIPE
            )

        racker = racker_server(RACKER_PORT, "default", "fast")
        on_uvloop = racker_server(UVLOOP_PORT, "uvloop", "fast")
        plain = racker_server(AIOHTTP_PORT, "default", "aiohttp")
        nofast = racker_server(NOFAST_PORT, "default", "nofast")
        nginx = lk.server.popen(
            pinned(SERVER_CPU, ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
        )
        cli = lk.client.name
        try:
            racker_url = f"http://{SERVER_IP}:{RACKER_PORT}/assets/{blob.name}"
            nginx_url = f"http://{SERVER_IP}:{NGINX_PORT}/assets/{blob.name}"
            wait_ready(cli, f"http://{SERVER_IP}:{RACKER_PORT}/healthz")
            wait_ready(cli, f"http://{SERVER_IP}:{UVLOOP_PORT}/healthz")
            wait_ready(cli, f"http://{SERVER_IP}:{AIOHTTP_PORT}/healthz")
            wait_ready(cli, f"http://{SERVER_IP}:{NOFAST_PORT}/healthz")
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
            plain_ipxe = f"http://{SERVER_IP}:{AIOHTTP_PORT}/ipxe"
            wait_ready(cli, f"http://{SERVER_IP}:{AIOHTTP_PORT}{query}")
            nofast_ipxe = f"http://{SERVER_IP}:{NOFAST_PORT}/ipxe"
            wait_ready(cli, f"http://{SERVER_IP}:{NOFAST_PORT}{query}")
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
            bursts = {}
            healthz = f"http://{SERVER_IP}:{RACKER_PORT}/healthz"
            fixed = f"http://{SERVER_IP}:{NGINX_PORT}/ipxe"
            ipxe = f"http://{SERVER_IP}:{RACKER_PORT}/ipxe"
            urls = {"racker": ipxe, "aiohttp": plain_ipxe, "nofast": nofast_ipxe,
                    "healthz": healthz, "nginx": fixed}  # fmt: skip
            for name, server, macs, _what in BURSTS:
                url = urls[server]
                load = [PY, "-P", __file__, "--load", url, str(args.burst), str(args.rounds), macs]
                loaded = lk.client.run(
                    *pinned(CLIENT_CPU, load),
                    timeout=600,
                )
                bursts[name] = json.loads(loaded.stdout)
        finally:
            for proc in (racker, on_uvloop, plain, nofast, nginx):
                proc.terminate()
                proc.wait(timeout=10)
    report(args, speeds, rows, bursts)


# -- assets, unpinned: throughput and server CPU per MiB ------------------------------------


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its live children (nginx's worker), every thread, in seconds.

    From each thread's ``schedstat`` (time on a CPU, in ns), not utime+stime: those are
    sampled at the clock tick (10 ms), coarser than a 500 MiB download's whole server CPU
    (~0.1 s), and the first runs gave per-round ratios from 0.4x to 4x out of that alone.
    """
    total = 0
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for each in (pid, *map(int, kids)):
        for task in Path(f"/proc/{each}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def link_packets(ns: str) -> tuple[int, int]:
    """(sent, received) packets of the server's end of the veth link."""
    out = subprocess.run(
        ["ip", "-n", ns, "-j", "-s", "link", "show", "pxe0"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    stats = json.loads(out)[0]["stats64"]
    return stats["tx"]["packets"], stats["rx"]["packets"]


SYSCALLS = ("sendfile64", "epoll_wait", "epoll_pwait", "epoll_ctl", "writev", "write")


def count_syscalls(pids: list[int], run: Callable[[], object]) -> dict[str, int]:
    """How many of ``SYSCALLS`` (and context switches) ``pids`` make while ``run`` runs."""
    events = ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)
    with tempfile.NamedTemporaryFile(suffix=".csv") as out:
        pid_list = ",".join(map(str, pids))
        cmd = ["perf", "stat", "-x", ",", "-o", out.name, "-e", events + ",context-switches"]
        perf = subprocess.Popen([*cmd, "-p", pid_list])
        time.sleep(0.5)  # perf attaches
        run()
        perf.send_signal(2)
        perf.wait(timeout=30)
        counts = {}
        for line in Path(out.name).read_text().splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[0].isdigit():
                counts[fields[2].removeprefix("syscalls:sys_enter_")] = int(fields[0])
    return counts


def timed_downloads(ns: str, urls: list[str]) -> tuple[float, float]:
    """Fetch ``urls`` at once, each by its own curl: seconds until the last one ends (by
    curl's own clocks, so process start-up is not counted), and the client's CPU seconds
    (the curls, their shell and ``ip netns exec``: children's rusage, exact once reaped)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    one = "curl -sS -o /dev/null -w '%{http_code} %{time_total}\\n' "
    script = " & ".join(one + url for url in urls) + " & wait"
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "sh", "-c", script],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout.split()  # fmt: skip
    codes, times = out[0::2], [float(t) for t in out[1::2]]
    if len(times) != len(urls) or set(codes) != {"200"}:
        raise RuntimeError(f"downloads failed: {out}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return max(times), cpu


def run_assets_unpinned(args: argparse.Namespace) -> None:
    """Interleaved rounds, nothing pinned: in each round every server (in a rotating order)
    serves one ``--size-mib`` download, then ``--parallel`` downloads of ``--parallel-mib``
    at once. Per server and case: MiB/s and the server's CPU ms per MiB (utime+stime)."""
    from tests.support.netns import link

    servers = tuple(args.asset_servers.split(","))
    with (
        tempfile.TemporaryDirectory(prefix="racker-bench-http-") as tmpdir,
        link(server_ip=SERVER_IP, client_ip=CLIENT_IP) as lk,
    ):
        tmp = Path(tmpdir)
        assets = tmp / "assets"
        assets.mkdir()
        chunk = os.urandom(1 << 20)
        for name, mib in (("big.img", args.size_mib), ("part.img", args.parallel_mib)):
            with (assets / name).open("wb") as f:
                for _ in range(mib):
                    f.write(chunk)
        conf = NGINX_CONF.format(
            tmp=tmp, ip=SERVER_IP, port=NGINX_PORT, assets=assets, script=FIXED_SCRIPT
        )
        (tmp / "nginx.conf").write_text(conf)
        sizes = ["--rounds", "1", "--burst", "1"]
        ports = {name: 8090 + i for i, name in enumerate(servers)}
        ports["nginx"] = NGINX_PORT
        # racker: as racker serve runs; stock: aiohttp's loop.sendfile; chunk=N: racker with
        # sendfile's count capped at N bytes (an experiment).
        procs = {
            name: lk.server.popen(
                [PY, "-P", __file__, "--serve", SERVER_IP, str(ports[name]), str(assets),
                 "default", "fast" if name == "racker" else name, *sizes],
                stdout=subprocess.PIPE,
            )
            for name in servers if name != "nginx"
        }  # fmt: skip
        procs["nginx"] = lk.server.popen(["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(tmp)])
        cli = lk.client.name
        results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
        try:
            for name in servers:
                wait_ready(cli, f"http://{SERVER_IP}:{ports[name]}/assets/part.img")
            cases = {
                "asset500": ["big.img"],
                "asset8x200": ["part.img"] * args.parallel,
            }
            for round_ in range(args.asset_rounds):
                turn = round_ % len(servers)
                order = servers[turn:] + servers[:turn]
                for case, files in cases.items():
                    for name in order:
                        urls = [f"http://{SERVER_IP}:{ports[name]}/assets/{f}" for f in files]
                        mib = sum((assets / f).stat().st_size for f in files) / (1 << 20)
                        before = cpu_seconds(procs[name].pid)
                        took, client = timed_downloads(cli, urls)
                        cpu = cpu_seconds(procs[name].pid) - before
                        results.setdefault((case, name), []).append(
                            (mib / took, cpu * 1e3 / mib, client * 1e3 / mib)
                        )
            profiles = {}
            for case, files in cases.items():
                for name in servers:
                    urls = [f"http://{SERVER_IP}:{ports[name]}/assets/{f}" for f in files]
                    mib = sum((assets / f).stat().st_size for f in files) / (1 << 20)
                    pid = procs[name].pid
                    pids = [
                        pid,
                        *map(int, Path(f"/proc/{pid}/task/{pid}/children").read_text().split()),
                    ]
                    link_before = link_packets(lk.server.name)
                    counts = count_syscalls(pids, lambda urls=urls: timed_downloads(cli, urls))
                    link_after = link_packets(lk.server.name)
                    sent, acks = link_after[0] - link_before[0], link_after[1] - link_before[1]
                    counts.update({"packets out": sent, "packets in": acks})
                    profiles[(case, name)] = {k: v / mib for k, v in counts.items()}
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=10)
    report_assets(args, results)
    print(
        "\nsystem calls and context switches of each server per MiB sent (perf stat, one run "
        "each, after the rounds), and the packets on its side of the veth link\n"
    )
    names = [*SYSCALLS, "context-switches", "packets out", "packets in"]
    print("| case | server | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for (case, name), per_mib in profiles.items():
        row = " | ".join(f"{per_mib.get(n, 0):.2f}" for n in names)
        print(f"| {case} | {name} | {row} |")


def results_names(results: dict[tuple[str, str], Any]) -> list[str]:
    return list(dict.fromkeys(name for _case, name in results))


def report_assets(
    args: argparse.Namespace, results: dict[tuple[str, str], list[tuple[float, float, float]]]
) -> None:
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (at the start: {args.load_before})")
    print(f"not pinned; {args.asset_rounds} interleaved rounds; racker = racker.web.sendfile,"
          " stock = aiohttp FileResponse (loop.sendfile), nginx: sendfile on\n")  # fmt: skip
    print("| case | server | MiB/s median | MiB/s runs | CPU ms/MiB median | CPU ms/MiB runs "
          "| curl CPU ms/MiB median |")  # fmt: skip
    print("|---|---|---:|---|---:|---|---:|")
    for (case, name), runs in results.items():
        speeds, cpus = [r[0] for r in runs], [r[1] for r in runs]
        client = statistics.median(r[2] for r in runs)
        print(f"| {case} | {name} | {statistics.median(speeds):.0f} | "
              f"{', '.join(f'{x:.0f}' for x in speeds)} | {statistics.median(cpus):.3f} | "
              f"{', '.join(f'{x:.3f}' for x in cpus)} | {client:.3f} |")  # fmt: skip
    print()
    for case in ("asset500", "asset8x200"):
        for metric, index in (("mib_s", 0), ("cpu_ms_per_mib", 1), ("client_cpu_ms_per_mib", 2)):
            for name in (s for s in results_names(results) if s != "nginx"):
                mine = [r[index] for r in results[(case, name)]]
                peer = [r[index] for r in results[(case, "nginx")]]
                # The ratio of medians; the spread: the lowest and highest per-round ratio.
                per_round = sorted(a / b for a, b in zip(mine, peer, strict=True))
                # One line per metric for racker; the references (stock, experiments) under
                # their own metric names, so a reader keyed on the name finds racker's.
                label = name
                key = f"{case}.{metric}" if name == "racker" else f"{case}.{name}.{metric}"
                # paired: the median of the per-round ratios (each round's servers ran back to
                # back, so a slow phase of the machine weighs on both sides of a ratio).
                quartiles = statistics.quantiles(per_round, n=4)
                print(
                    f"SUMMARY http.{key} {label}={statistics.median(mine):.3f} "
                    f"nginx={statistics.median(peer):.3f} "
                    f"ratio={statistics.median(mine) / statistics.median(peer):.2f} "
                    f"spread={per_round[0]:.2f}-{per_round[-1]:.2f} "
                    f"paired={statistics.median(per_round):.2f} "
                    f"iqr={quartiles[0]:.2f}-{quartiles[2]:.2f}"
                )


def report(
    args: argparse.Namespace,
    speeds: dict[str, list[float]],
    rows: list[tuple[str, dict[str, float]]],
    bursts: dict[str, Any],
) -> None:
    mib = 1 << 20
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (at the start: {args.load_before})")
    where = f"servers on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}"
    print(f"pinned: {where}" if Pinning.on else "not pinned (--no-pin)")
    if speeds["nginx"]:
        nginx = statistics.median(speeds["nginx"])
        print(f"\n{args.size_mib} MiB asset over veth, curl, median of {args.runs} runs\n")
        print("| server | MiB/s (median) | runs (MiB/s) | vs nginx |")
        print("|---|---:|---|---:|")
        for key, name in (
            ("racker", "racker (racker.web.sendfile)"),
            ("uvloop", "racker on uvloop (racker.web.sendfile: sendfile there too)"),
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
    per_round = {}
    for key, _server, _macs, what in BURSTS:
        rounds = [[x * 1e3 for x in r] for r in bursts[key]["latencies"]]
        lat = [x for r in rounds for x in r]
        p50, p90, p99 = (percentile(lat, q) for q in (0.5, 0.9, 0.99))
        print(
            f"| {args.rounds} bursts of {args.burst} at once, kept-alive connections ({what}) "
            f"| - | {bursts[key]['errors']} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {max(lat):.1f} |"
        )
        per_round[what] = sorted(percentile(r, 0.99) for r in rounds)
    print()
    for what, p99s in per_round.items():
        print(
            f"- bursts, {what}: p99 per burst {p99s[0]:.1f}-{p99s[-1]:.1f} ms (median "
            f"{statistics.median(p99s):.1f}); bursts with p99 < 20 ms: "
            f"{sum(p < 20 for p in p99s)}/{len(p99s)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--skip-assets", action="store_true", help="only the /ipxe latency part")
    parser.add_argument(
        "--no-pin", action="store_true", help="leave servers and clients to the scheduler"
    )
    parser.add_argument(
        "--render-cost", action="store_true", help="only the in-process µs per /ipxe answer"
    )
    parser.add_argument(
        "--assets-unpinned",
        action="store_true",
        help="only assets, unpinned: racker, racker with aiohttp's loop.sendfile, nginx; "
        "throughput and server CPU per MiB, one 500 MiB and 8 parallel 200 MiB downloads",
    )
    parser.add_argument("--asset-rounds", type=int, default=15)
    parser.add_argument("--asset-servers", default="racker,stock,nginx")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--parallel-mib", type=int, default=200)
    parser.add_argument("--serve", nargs=5, metavar=("HOST", "PORT", "ASSETS", "LOOP", "MODE"))
    parser.add_argument("--load", nargs=4, metavar=("URL", "BURST", "ROUNDS", "MACS"))
    args = parser.parse_args()
    if args.serve:
        from racker.app.run import run_event_loop

        host, port, assets, loop, mode = args.serve
        nodes = inventory(args.rounds, args.burst)
        run_event_loop(
            serve(host, int(port), Path(assets), mode not in ("aiohttp", "nofast"),
                  mode != "aiohttp", nodes, stock_assets=mode == "stock",
                  chunk=int(mode[6:]) if mode.startswith("chunk=") else 0),
            loop=None if loop == "default" else loop,
        )  # fmt: skip
    elif args.assets_unpinned:
        args.load_before = f"{os.getloadavg()[0]:.1f}"
        run_assets_unpinned(args)
    elif args.render_cost:
        for groups, count, what in (
            (0, 1000, "built-in catalog, 1000 nodes"),
            (200, 200, "built-in catalog + a group per MAC, 200 nodes"),
        ):
            runs = [render_cost(count, groups) for _ in range(5)]
            first, cached = min(r[0] for r in runs), min(r[1] for r in runs)
            print(f"/ipxe handler in-process ({what}), best of 5: first render {first:.1f} µs, "
                  f"cached {cached:.1f} µs")  # fmt: skip
    elif args.load:
        load(args.load[0], int(args.load[1]), int(args.load[2]), args.load[3])
    else:
        Pinning.on = Pinning.on and not args.no_pin
        args.load_before = f"{os.getloadavg()[0]:.1f}"
        run(args)


if __name__ == "__main__":
    main()
