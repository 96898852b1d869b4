"""Bulk ingest through the API: POST /api/v1/runs with 10,000 runs per request.

Prints runs/s through a real server process, and the ratio to a "raw" baseline that appends
the same stored rows straight into a scratch ``runs`` table of the same schema (DuckDB: from
Arrow tables; PostgreSQL: COPY), 10,000 rows per transaction.

A million runs by default: DuckDB's checkpoints cost more as the store grows, and a shorter
run would not pay for them.

    .venv/bin/python bench/ingest_bulk.py --db duckdb [--runs 1000000] [--concurrency 1,4]
    .venv/bin/python bench/ingest_bulk.py --db postgres --quick
    .venv/bin/python bench/ingest_bulk.py --db duckdb --breakdown [--profile]

``--breakdown`` also runs the server's ingest path in this process (decode, validate,
writer merge, staging, SQL, commit; no HTTP) and prints where the time goes per run;
``--profile`` adds a cProfile of that path.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import os
import pstats
import shutil
import tempfile
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
    arrow_table,
    base_parser,
    chunks,
    copy_text,
    duckdb_path,
    environment_banner,
    fmt_rate,
    instrument_store,
    latency_summary,
    make_runs,
    migrate,
    ms,
    open_sql_store,
    pg_create_database,
    pg_drop_database,
    post_bodies,
    print_breakdown,
    scratch_database,
    stored_rows,
)
from flowdeck.store.duckdb import CHECKPOINT_THRESHOLD
from flowdeck.store.sql import RUN_COLUMNS


# -- through the API ---------------------------------------------------------------------------
def api_run(
    backend: str,
    admin: str,
    bodies: Sequence[bytes],
    n_runs: int,
    concurrency: int,
    warmup: bytes,
    report: Report,
) -> float:
    with scratch_database(backend, admin, "bulk") as url, Server(url) as server:
        asyncio.run(post_bodies(server.base, [warmup], 1))
        h0, cpu0 = server.health(), server.cpu_seconds()
        with Stopwatch() as client, MachineLoad() as machine:
            elapsed, latencies = asyncio.run(post_bodies(server.base, bodies, concurrency))
        h1, cpu1 = server.health(), server.cpu_seconds()
        rate = n_runs / elapsed
        lat = latency_summary(latencies)
        commits = h1["writer"]["commits"] - h0["writer"]["commits"]
        written = h1["writer"]["runs_written"] - h0["writer"]["runs_written"]
        report.section(f"{concurrency} concurrent client connection(s)")
        report.line("runs/s through the API", fmt_rate(rate))
        report.line("elapsed", f"{elapsed:.2f} s for {n_runs:,} runs in {len(bodies)} requests")
        report.line(
            "request latency p50 / p95 / max", " / ".join(ms(lat[k]) for k in ("p50", "p95", "max"))
        )
        report.line(
            "writer commits / runs written",
            f"{commits} / {written:,} ({written / max(commits, 1):,.0f} runs per commit)",
        )
        report.line(
            "server CPU (s) / wall (s)",
            f"{cpu1 - cpu0:.2f} / {elapsed:.2f} ({(cpu1 - cpu0) / elapsed:.0%} of one core)",
        )
        report.line("server CPU per 10k runs", ms((cpu1 - cpu0) / n_runs * 10_000 * 1000))
        report.line("client CPU (s)", f"{client.cpu:.2f}")
        report.line("machine CPU busy (all cores, incl. database)", f"{machine.busy:.0%}")
        report.line("server peak memory", f"{server.peak_memory_mb():,.0f} MB")
        return rate


# -- the raw baseline --------------------------------------------------------------------------
def raw_append(backend: str, admin: str, row_chunks: Sequence[Sequence[tuple[Any, ...]]]) -> float:
    """Seconds to append the rows into an empty scratch ``runs`` table (flowdeck's schema:
    primary key and indexes included, and on DuckDB the store's checkpoint threshold), one
    transaction per chunk."""
    cols = ", ".join(RUN_COLUMNS)
    if backend == "duckdb":
        import duckdb

        folder = tempfile.mkdtemp(prefix="flowdeck-bench-raw-")
        try:
            url = f"duckdb:///{folder}/raw.duckdb"
            migrate(url)
            tables = [arrow_table(rows) for rows in row_chunks]
            con = duckdb.connect(
                duckdb_path(url), config={"checkpoint_threshold": CHECKPOINT_THRESHOLD}
            )
            t0 = time.perf_counter()
            for table in tables:
                con.begin()
                con.register("staged", table)
                con.execute(f"INSERT INTO runs ({cols}) SELECT {cols} FROM staged")
                con.unregister("staged")
                con.commit()
            elapsed = time.perf_counter() - t0
            con.close()
            return elapsed
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    import psycopg

    dbname = f"flowdeck_bench_rawbulk_{os.getpid()}"
    url = pg_create_database(admin, dbname)
    try:
        migrate(url)
        payloads = [copy_text(rows) for rows in row_chunks]
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for payload in payloads:
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy(f"COPY runs ({cols}) FROM STDIN") as copy,
                ):
                    copy.write(payload)
            return time.perf_counter() - t0
    finally:
        pg_drop_database(admin, dbname)


# -- the ingest path in this process -------------------------------------------------------------
def _ingest_in_process(
    backend: str, admin: str, bodies: Sequence[bytes], profiler: cProfile.Profile | None
) -> tuple[float, StageTimer]:
    """Every body through the server's ingest path in this thread, on a fresh store:
    (seconds, stage times)."""
    from flowdeck.events import EventBus
    from flowdeck.ingest.reports import parse_reports
    from flowdeck.ingest.writer import Writer, WriteRequest

    with scratch_database(backend, admin, "bulkinproc") as url:
        store = open_sql_store(url)
        store.migrate()
        timer = StageTimer()
        if profiler is None:
            instrument_store(store, timer)
        writer = Writer(store, EventBus())
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for body in bodies:
            with timer.stage("api: parse + validate (parse_reports)"):
                reports, locate = parse_reports(body, 10_000)
            request = WriteRequest(reports, locate)
            with timer.stage("writer: _commit total"):
                writer._commit([request])
            ids = request.future.result()
            with timer.stage("api: response JSON"):
                orjson.dumps({"accepted": len(ids), "run_ids": list(dict.fromkeys(ids))})
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - t0
        store.close()
    return elapsed, timer


def in_process(
    backend: str, admin: str, bodies: Sequence[bytes], n_runs: int, profile: bool
) -> float:
    """runs/s of the ingest path in-process and where the time goes; with ``profile`` a
    second pass under cProfile (its overhead would distort the first)."""
    report = Report("ingest path in-process (no HTTP, one thread): where a run's time goes")
    elapsed, timer = _ingest_in_process(backend, admin, bodies, None)
    rate = n_runs / elapsed
    report.line("runs/s in-process", fmt_rate(rate))
    print_breakdown(report, timer, n_runs, elapsed)
    if profile:
        profiler = cProfile.Profile()
        _ingest_in_process(backend, admin, bodies, profiler)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(30)
        print("\n-- cProfile of the in-process ingest path (top 30 by own time) --")
        print(out.getvalue(), flush=True)
    return rate


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=1_000_000, help="total runs (default 1000000)")
    parser.add_argument("--per-request", type=int, default=10_000)
    parser.add_argument(
        "--concurrency",
        default="1,4",
        help="comma-separated numbers of client connections, one server per value (default 1,4)",
    )
    parser.add_argument("--no-raw", action="store_true", help="skip the raw baseline")
    parser.add_argument("--breakdown", action="store_true", help="also time the path in-process")
    parser.add_argument("--profile", action="store_true", help="cProfile the in-process path")
    args = parser.parse_args()
    n_runs = 20_000 if args.quick else args.runs
    levels = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.quick:
        levels = levels[:1]

    environment_banner(args.db, f"{n_runs:,} runs, {args.per_request:,} per request")
    with Stopwatch() as gen:
        runs = make_runs(n_runs)
        bodies = [orjson.dumps(list(c)) for c in chunks(runs, args.per_request)]
        warmup = orjson.dumps(make_runs(1_000, prefix="warmup", first_batch=1))
    size = sum(map(len, bodies))
    print(
        f"generated {n_runs:,} runs in {gen.wall:.1f} s: {len(bodies)} bodies, "
        f"{size / 1e6:.1f} MB ({size / n_runs:.0f} bytes per run)",
        flush=True,
    )

    report = Report(f"bulk ingest through the API ({args.db})")
    best = 0.0
    for level in levels:
        best = max(best, api_run(args.db, args.pg_admin, bodies, n_runs, level, warmup, report))

    if args.breakdown or args.profile:
        inproc = in_process(args.db, args.pg_admin, bodies, n_runs, args.profile)
        report.ratio("API best / in-process (HTTP + server overhead)", best, inproc)

    if not args.no_raw:
        rows = stored_rows(runs)
        raw_seconds = raw_append(args.db, args.pg_admin, chunks(rows, args.per_request))
        raw_rate = n_runs / raw_seconds
        how = "Arrow append" if args.db == "duckdb" else "COPY"
        summary = Report(f"raw baseline ({how} into a scratch runs table, same schema)")
        if args.db == "duckdb":
            summary.line("checkpoint threshold (as the store's)", CHECKPOINT_THRESHOLD)
        summary.line(f"rows/s raw {how}", fmt_rate(raw_rate, "rows/s"))
        summary.line("API best runs/s", fmt_rate(best))
        summary.ratio("API / raw", best, raw_rate, "1.0 = as fast as the raw append")
        summary.ratio("raw / API", raw_rate, best, "how many times slower the API path is")


if __name__ == "__main__":
    main()
