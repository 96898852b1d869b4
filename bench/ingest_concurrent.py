"""Many small writers: single-run POST /api/v1/runs from 32 concurrent clients.

Prints runs/s and request latency percentiles through a real server process, how many runs
each group commit carried, and the ratio to a "raw" baseline: one INSERT + COMMIT per run on
one connection into a scratch ``runs`` table of the same schema (what group commit improves on).

    .venv/bin/python bench/ingest_concurrent.py --db duckdb [--runs 20000] [--clients 32]
    .venv/bin/python bench/ingest_concurrent.py --db postgres --quick
    .venv/bin/python bench/ingest_concurrent.py --db duckdb --client httpx2

The default client is a minimal asyncio HTTP/1.1 keep-alive client (~50-90 µs of CPU per
request) so the 2-core machine's second core is left to the server; ``--client httpx2`` uses
httpx2.AsyncClient instead and shows how much a heavier client costs.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson

from common import (
    MachineLoad,
    Report,
    Server,
    StageTimer,
    Stopwatch,
    base_parser,
    chunks,
    duckdb_path,
    environment_banner,
    fmt_rate,
    instrument_store,
    latency_summary,
    make_runs,
    migrate,
    ms,
    open_sql_store,
    percentile,
    pg_create_database,
    pg_drop_database,
    post_bodies,
    print_breakdown,
    scratch_database,
    stored_rows,
    validate,
)
from flowdeck.store.sql import RUN_COLUMNS


async def load_httpx2(
    base: str, bodies: Sequence[bytes], clients: int
) -> tuple[float, list[float]]:
    import httpx2

    latencies: list[float] = []
    pending = iter(bodies)
    headers = {"content-type": "application/json"}
    limits = httpx2.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            for body in pending:
                t0 = time.perf_counter()
                resp = await client.post("/api/v1/runs", content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                if resp.status_code != 200:
                    raise RuntimeError(f"POST answered {resp.status_code}: {resp.text[:300]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return elapsed, latencies


class HealthSampler:
    """Polls /healthz every ``interval`` seconds from a thread during the load: the
    writer's last commit duration as the server itself measures it, and its queue depth."""

    def __init__(self, server: Server, interval: float = 0.1) -> None:
        self.server = server
        self.interval = interval
        self.commit_ms: list[float] = []
        self.queue: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last = -1
        while not self._stop.wait(self.interval):
            writer = self.server.health()["writer"]
            if writer["commits"] != last:
                last = writer["commits"]
                self.commit_ms.append(float(writer["last_commit_ms"]))
            self.queue.append(int(writer["queue_depth"]))

    def __enter__(self) -> HealthSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def raw_single_inserts(
    backend: str, admin: str, rows: Sequence[tuple[Any, ...]], seconds: float
) -> tuple[int, float]:
    """(rows, seconds) of one INSERT + COMMIT per row on one connection, stopping after
    ``seconds`` or when the rows run out."""
    cols = ", ".join(RUN_COLUMNS)
    if backend == "duckdb":
        import duckdb

        folder = tempfile.mkdtemp(prefix="flowdeck-bench-raw-")
        try:
            url = f"duckdb:///{folder}/raw.duckdb"
            migrate(url)
            con = duckdb.connect(duckdb_path(url))
            sql = f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
            done, t0 = 0, time.perf_counter()
            for row in rows:
                con.begin()
                con.execute(sql, row)
                con.commit()
                done += 1
                if done % 64 == 0 and time.perf_counter() - t0 > seconds:
                    break
            elapsed = time.perf_counter() - t0
            con.close()
            return done, elapsed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    import psycopg

    dbname = f"flowdeck_bench_rawsingle_{os.getpid()}"
    url = pg_create_database(admin, dbname)
    try:
        migrate(url)
        sql = f"INSERT INTO runs ({cols}) VALUES ({', '.join(['%s'] * len(RUN_COLUMNS))})"
        with psycopg.connect(url) as conn:
            done, t0 = 0, time.perf_counter()
            for row in rows:
                conn.execute(sql, row)
                conn.commit()
                done += 1
                if done % 64 == 0 and time.perf_counter() - t0 > seconds:
                    break
            return done, time.perf_counter() - t0
    finally:
        pg_drop_database(admin, dbname)


def _busy_python(stop: threading.Event, bodies: Sequence[bytes]) -> None:
    """What the server's event loop and thread pool do between commits: validate bodies."""
    while not stop.is_set():
        for body in bodies:
            validate(body, 1)
            if stop.is_set():
                return


def commit_breakdown(
    backend: str, admin: str, prefill: int, group: int, commits: int
) -> tuple[float, float]:
    """The writer's group commit of ``group`` single-run requests, in this thread, on a store
    already holding ``prefill`` runs: prints a per-stage breakdown, then the same commits
    while one other thread runs Python (as the server's event loop does); returns (wall,
    CPU) seconds per commit of the first pass."""
    from flowdeck.events import EventBus
    from flowdeck.ingest.writer import Writer, WriteRequest

    total = 2 * commits + 10
    with scratch_database(backend, admin, "concinproc") as url:
        store = open_sql_store(url)
        store.migrate()
        writer = Writer(store, EventBus())
        for chunk in chunks(make_runs(prefill, prefix="prefill"), 10_000):
            request = WriteRequest(*validate(list(chunk), 10_000))
            writer._commit([request])
            request.future.result()
        runs = make_runs(total * group, processes_per_batch=500, first_batch=9_000_000)
        singles = [validate(run, 1) for run in runs]

        def commit(i: int) -> float:
            requests = [WriteRequest(*s) for s in singles[i * group : (i + 1) * group]]
            t0 = time.perf_counter()
            writer._commit(requests)
            return time.perf_counter() - t0

        for i in range(5):  # warm-up
            commit(i)
        timer = StageTimer()
        instrument_store(store, timer)
        with Stopwatch() as watch:
            for i in range(5, commits + 5):
                with timer.stage("writer: _commit total"):
                    commit(i)
        alone = [timer.totals["writer: _commit total"] / commits]
        measured = StageTimer()
        measured.totals = dict(timer.totals)  # the contended pass below must not count
        stop = threading.Event()
        spare = [orjson.dumps(r) for r in make_runs(500, prefix="busy")]
        busy = threading.Thread(target=_busy_python, args=(stop, spare), daemon=True)
        busy.start()
        contended = [commit(i) for i in range(commits + 5, commits + 5 + commits // 2)]
        stop.set()
        busy.join()
        store.close()
    report = Report(
        f"group commit in-process: {group} single-run requests per commit, "
        f"{prefill:,} runs already stored ({backend})"
    )
    report.line("wall per commit", ms(watch.wall / commits * 1000))
    report.line("CPU per commit (this process)", ms(watch.cpu / commits * 1000))
    report.line("writer ceiling at this group size", fmt_rate(group * commits / watch.wall))
    print_breakdown(report, measured, group * commits, watch.wall)
    report.section("the same commits while one other thread runs Python (GIL contention)")
    report.line("median commit alone", ms(alone[0] * 1000))
    report.line("median commit beside a busy thread", ms(percentile(contended, 50) * 1000))
    report.ratio("slow-down", percentile(contended, 50), alone[0])
    return watch.wall / commits, watch.cpu / commits


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=20_000, help="runs to post (default 20000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--client", choices=("raw", "httpx2"), default="raw")
    parser.add_argument("--warmup", type=int, default=1_000, help="requests before measuring")
    parser.add_argument(
        "--raw-seconds", type=float, default=10.0, help="time limit of the raw baseline (s)"
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="also time the writer's group commit in-process, stage by stage",
    )
    args = parser.parse_args()
    n_runs = 1_000 if args.quick else args.runs
    warm = 100 if args.quick else args.warmup
    raw_limit = 2.0 if args.quick else args.raw_seconds

    environment_banner(args.db, f"{n_runs:,} single-run POSTs from {args.clients} clients")
    runs = make_runs(n_runs, processes_per_batch=500)
    bodies = [orjson.dumps(run) for run in runs]
    warmup = [orjson.dumps(r) for r in make_runs(warm, prefix="warmup", first_batch=1)]
    load = post_bodies if args.client == "raw" else load_httpx2

    report = Report(f"single-run POSTs, {args.clients} concurrent clients ({args.db})")
    with scratch_database(args.db, args.pg_admin, "conc") as url, Server(url) as server:
        asyncio.run(load(server.base, warmup, args.clients))
        h0, cpu0 = server.health(), server.cpu_seconds()
        with Stopwatch() as client, HealthSampler(server) as sampler, MachineLoad() as machine:
            elapsed, latencies = asyncio.run(load(server.base, bodies, args.clients))
        h1, cpu1 = server.health(), server.cpu_seconds()
    rate = n_runs / elapsed
    lat = latency_summary(latencies)
    commits = h1["writer"]["commits"] - h0["writer"]["commits"]
    written = h1["writer"]["runs_written"] - h0["writer"]["runs_written"]
    report.line("runs/s through the API", fmt_rate(rate))
    report.line("elapsed", f"{elapsed:.2f} s for {n_runs:,} requests ({args.client} client)")
    report.line("latency p50", ms(lat["p50"]))
    report.line("latency p95", ms(lat["p95"]))
    report.line("latency p99", ms(lat["p99"]))
    report.line("latency max", ms(lat["max"]))
    report.line(
        "writer commits / runs written",
        f"{commits:,} / {written:,} ({written / max(commits, 1):.1f} runs per commit)",
    )
    if sampler.commit_ms:
        report.line(
            "commit duration inside the server p50 / p95",
            f"{ms(percentile(sampler.commit_ms, 50))} / {ms(percentile(sampler.commit_ms, 95))}"
            f" (sampled /healthz, n={len(sampler.commit_ms)})",
        )
        report.line(
            "writer queue depth p50 / max",
            f"{percentile(sampler.queue, 50):.0f} / {max(sampler.queue)} requests",
        )
        report.line("commit cycle (wall / commits)", ms(elapsed / max(commits, 1) * 1000))
    report.line(
        "server CPU (s) / wall (s)",
        f"{cpu1 - cpu0:.2f} / {elapsed:.2f} ({(cpu1 - cpu0) / elapsed:.0%} of one core)",
    )
    report.line("server CPU per request", f"{(cpu1 - cpu0) / n_runs * 1e6:,.0f} µs")
    report.line(
        "client CPU (s)", f"{client.cpu:.2f} ({client.cpu / n_runs * 1e6:,.0f} µs per request)"
    )
    report.line("machine CPU busy (all cores, incl. database)", f"{machine.busy:.0%}")

    if args.breakdown:
        group = max(1, round(written / max(commits, 1)))
        _, cpu = commit_breakdown(args.db, args.pg_admin, n_runs, group, 50 if args.quick else 200)
        request_cpu = (cpu1 - cpu0) / n_runs - cpu / group
        report.line(
            "server CPU per request outside the writer",
            f"{request_cpu * 1e6:,.0f} µs (HTTP, FastAPI, validation; estimate)",
        )

    if not args.no_raw:
        rows = stored_rows(runs)
        done, seconds = raw_single_inserts(args.db, args.pg_admin, rows, raw_limit)
        raw_rate = done / seconds
        summary = Report("raw baseline (one INSERT + COMMIT per run, one connection)")
        summary.line("rows/s raw single-row commits", fmt_rate(raw_rate, "rows/s"))
        summary.line("measured on", f"{done:,} rows in {seconds:.2f} s")
        summary.line("API runs/s", fmt_rate(rate))
        summary.ratio("API / raw", rate, raw_rate, "> 1: group commit beats a commit per run")


if __name__ == "__main__":
    main()
