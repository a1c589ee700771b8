"""Benchmark: event-loop lag of a bootstrap run whose node-state writes are made on the loop
(``InlineJobs``) against through a ``StoreWriter`` thread (what ``racker bootstrap`` does).

    .venv/bin/python bench/store_lag.py [--rounds 5] [--nodes 200] [--sync FULL,NORMAL]
                                        [--dir DIR]

One run: a ``Bootstrap`` of N fake nodes (the tests' ``ScriptedRack``: each node "boots" as
soon as it is powered on and feeds ~10 events), its store a SQLite file in a fresh temporary
directory under --dir (default: the system's temporary directory; it must be on the disk to
measure, not a tmpfs), synchronous FULL or NORMAL, and a 1 ms ticker on the same loop that
records how late each tick runs. Two modes of the same code:

- racker (``writer``): the journal's jobs run on a ``StoreWriter`` thread;
- peer (``inline``): the journal's jobs run on the loop's thread (``InlineJobs``), i.e. node
  states, events and node-log lines written where the orchestrator wrote them before.

Each run is a subprocess of its own (``--one MODE SYNC``), so no run inherits another's heap,
threads or page cache state of the process; per round and synchronous setting the two modes
run one after the other, the order alternating per round. Reported per metric (max, p99 and
median tick lag in ms, and the run's wall time in s): each mode's median and min-max over the
rounds, a markdown table, and one line
``SUMMARY store_lag.METRIC@SYNC racker=... inline=... ratio=... spread=... rounds=...``
(ratio: median of the per-round ratios writer/inline; spread: their min-max). A default run
takes about a minute. Run it under the shared lock:
``flock /tmp/racker-bench.lock .venv/bin/python bench/store_lag.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# In place of this script's directory: bench/http.py would shadow the standard library's http.
sys.path[:1] = [str(REPO), str(REPO / "src")]

METRICS = ("max_ms", "p99_ms", "median_ms", "run_s")


async def one_run(mode: str, sync: str, n: int, directory: str | None) -> dict[str, float]:
    from tests.unit.bootstrap.test_orchestrator import FAST, ScriptedRack, make_targets

    from racker.bootstrap.orchestrator import Bootstrap, RunOptions
    from racker.store import Store
    from racker.store_writer import StoreWriter

    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        state = Path(tmp)
        lags: list[float] = []
        stop = False

        async def ticker() -> None:
            while not stop:
                before = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - before - 0.001)

        driver = ScriptedRack({})
        targets = make_targets(n, driver)
        store = Store(state / "racker.db", sync)  # type: ignore[arg-type]
        writer = None
        if mode == "writer":
            writer = StoreWriter(state / "racker.db", sync)  # type: ignore[arg-type]
            writer.start()
        boot = Bootstrap(
            targets,
            driver,
            store,
            RunOptions(deadlines=FAST, on_failure="exclude"),
            log_dir=state / "logs",
            macs_by_address={f"10.0.0.{i}": t.mac for i, t in enumerate(targets, 1)},
            jobs=writer,
        )
        driver.bootstrap = boot
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        result = await boot.run()
        took = time.perf_counter() - started
        stop = True
        await tick
        for task in driver.tasks:
            task.cancel()
        if writer is not None:
            writer.close()
        store.close()
        if not result.ok:
            raise SystemExit(
                f"bootstrap failed: { {m: r.phase for m, r in result.records.items()} }"
            )
        lags.sort()
        return {
            "max_ms": lags[-1] * 1000,
            "p99_ms": lags[int(len(lags) * 0.99)] * 1000,
            "median_ms": statistics.median(lags) * 1000,
            "run_s": took,
        }


def run_subprocess(mode: str, sync: str, n: int, directory: str | None) -> dict[str, float]:
    argv = [sys.executable, __file__, "--one", mode, sync, "--nodes", str(n)]
    if directory:
        argv += ["--dir", directory]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    got: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return got


def span(values: list[float], fmt: str) -> str:
    return f"{fmt.format(min(values))}-{fmt.format(max(values))}"


def report(sync: str, n: int, runs: dict[str, list[dict[str, float]]]) -> None:
    print(f"\n### loop lag, {n} nodes, synchronous={sync}, {len(runs['writer'])} rounds\n")
    print("| metric | writer (racker) | inline (peer) | ratio writer/inline | ratio spread |")
    print("|---|---|---|---|---|")
    lines = []
    for metric in METRICS:
        fmt = "{:.3f}" if metric == "median_ms" else "{:.2f}"
        mine = [r[metric] for r in runs["writer"]]
        peer = [r[metric] for r in runs["inline"]]
        ratios = [a / b for a, b in zip(mine, peer, strict=True) if b > 0] or [float("nan")]
        ratio = statistics.median(ratios)
        print(
            f"| {metric} | {fmt.format(statistics.median(mine))} ({span(mine, fmt)})"
            f" | {fmt.format(statistics.median(peer))} ({span(peer, fmt)})"
            f" | {ratio:.2f} | {min(ratios):.2f}-{max(ratios):.2f} |"
        )
        lines.append(
            f"SUMMARY store_lag.{metric}@{sync} racker={fmt.format(statistics.median(mine))}"
            f" inline={fmt.format(statistics.median(peer))} ratio={ratio:.2f}"
            f" spread={min(ratios):.2f}-{max(ratios):.2f} rounds={len(ratios)}"
        )
    print()
    for line in lines:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--sync", default="FULL,NORMAL", help="comma-separated: FULL, NORMAL")
    parser.add_argument("--dir", default=None, help="where the store's directory is made")
    parser.add_argument("--one", nargs=2, metavar=("MODE", "SYNC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.nodes <= 254:
        parser.error("--nodes must be 1-254 (the fake BMCs' addresses are 10.0.1.N)")
    if args.one:
        mode, sync = args.one
        print(json.dumps(asyncio.run(one_run(mode, sync, args.nodes, args.dir))))
        return
    syncs = [s.strip().upper() for s in args.sync.split(",") if s.strip()]
    if not syncs or not set(syncs) <= {"FULL", "NORMAL"}:
        parser.error("--sync: FULL and/or NORMAL")
    for sync in syncs:
        runs: dict[str, list[dict[str, float]]] = {"writer": [], "inline": []}
        for r in range(args.rounds):
            order = ("inline", "writer") if r % 2 == 0 else ("writer", "inline")
            for mode in order:
                got = run_subprocess(mode, sync, args.nodes, args.dir)
                runs[mode].append(got)
                rounded = {k: round(v, 3) for k, v in got.items()}
                print(
                    json.dumps({"round": r + 1, "mode": mode, "sync": sync, **rounded}), flush=True
                )
        report(sync, args.nodes, runs)


if __name__ == "__main__":
    main()
