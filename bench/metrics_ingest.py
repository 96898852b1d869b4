"""Bulk metric point ingest: POST /api/v1/metrics/points with series in columns.

Prints points/s through a real server process, the same path in-process without HTTP
(parse + the writer's point commit), and the ratio to a "raw" baseline that appends the same
(series_id, t, value) rows straight into the ``metric_points`` table of a scratch database
(DuckDB: from Arrow tables; PostgreSQL: COPY), one transaction per request's worth. The raw
baseline keeps no rollups: the ratio is what rollups, the sketch and validation cost.

    .venv/bin/python bench/metrics_ingest.py --db duckdb [--points 2000000] [--concurrency 1,2]
    .venv/bin/python bench/metrics_ingest.py --db postgres --quick
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

import orjson

from common import (
    Report,
    Server,
    Stopwatch,
    base_parser,
    environment_banner,
    fmt_rate,
    latency_summary,
    ms,
    open_sql_store,
    post_bodies,
    scratch_database,
)
from flowdeck.timeseries.points import PointBatch, parse_points

START = 1_763_596_800  # 2025-11-20T00:00:00Z
PATH = "/api/v1/metrics/points"


def make_bodies(n_points: int, per_request: int, per_series: int) -> list[bytes]:
    """Bodies of series in columns: hosts × one point per second each, values lognormal."""
    rng = random.Random(1)
    bodies: list[bytes] = []
    made = 0
    series = 0
    while made < n_points:
        items = []
        in_body = 0
        while in_body < per_request and made < n_points:
            n = min(per_series, per_request - in_body, n_points - made)
            first = START + (series // 200) * per_series
            items.append(
                {
                    "name": "api.latency_ms",
                    "tags": {"host": f"h{series % 200:03d}", "region": f"r{series % 4}"},
                    "times": list(range(first, first + n)),
                    "values": [round(rng.lognormvariate(3, 0.7), 3) for _ in range(n)],
                }
            )
            series += 1
            in_body += n
            made += n
        bodies.append(orjson.dumps(items))
    return bodies


def api_run(
    backend: str, admin: str, bodies: Sequence[bytes], n_points: int, connections: int
) -> float:
    with scratch_database(backend, admin, "mpoints") as url, Server(url) as server:
        cpu0 = server.cpu_seconds()
        elapsed, latencies = asyncio.run(post_bodies(server.base, bodies, connections, PATH))
        cpu1 = server.cpu_seconds()
        health = server.health()
    rate = n_points / elapsed
    lat = latency_summary(latencies)
    report = Report(f"through the API, {connections} connection(s)")
    report.line("points/s through the API", fmt_rate(rate, "points/s"))
    report.line("elapsed", f"{elapsed:.2f} s for {n_points:,} points in {len(bodies)} requests")
    report.line(
        "request latency p50 / p95 / max", " / ".join(ms(lat[k]) for k in ("p50", "p95", "max"))
    )
    report.line("server CPU (s) / wall (s)", f"{cpu1 - cpu0:.2f} / {elapsed:.2f}")
    writer = health.get("writer", {})
    if "points_written" in writer:
        report.line("points written (writer stats)", f"{writer['points_written']:,}")
    return rate


def in_process(backend: str, admin: str, bodies: Sequence[bytes], n_points: int) -> float:
    """The server's path without HTTP: parse_points, then the store's add_points (what the
    writer thread runs), one request per commit."""
    with scratch_database(backend, admin, "mpointsinproc") as url:
        store = open_sql_store(url)
        store.migrate()
        parse = commit = 0.0
        from datetime import UTC, datetime

        for body in bodies:
            t0 = time.perf_counter()
            batch: PointBatch = parse_points(body, 10_000_000)
            t1 = time.perf_counter()
            outcome = store.add_points([batch], 10_000, datetime.now(UTC))
            t2 = time.perf_counter()
            assert outcome == [None]
            parse += t1 - t0
            commit += t2 - t1
        store.close()
    rate = n_points / (parse + commit)
    report = Report("in-process (no HTTP, one thread)")
    report.line("points/s in-process", fmt_rate(rate, "points/s"))
    report.line("parse + validate per 100k points", ms(parse / n_points * 100_000 * 1000))
    report.line("store.add_points per 100k points", ms(commit / n_points * 100_000 * 1000))
    return rate


def raw_append(backend: str, admin: str, bodies: Sequence[bytes]) -> float:
    """Seconds to append the same points as bare rows into ``metric_points``."""
    batches = [parse_points(body, 10_000_000) for body in bodies]
    rows = []
    for batch in batches:
        ids = [k.series_id for k in batch.series]
        rows.append(
            (
                [ids[i] for i in batch.series_index.to_pylist()],
                batch.times_us.to_pylist(),
                batch.values.to_pylist(),
            )
        )
    with scratch_database(backend, admin, "mpointsraw") as url:
        store = open_sql_store(url)
        store.migrate()
        store.close()
        if backend == "duckdb":
            import duckdb
            import pyarrow as pa

            tables = [
                pa.table(
                    {
                        "series_id": pa.array(s, pa.int64()),
                        "t": pa.array(t, pa.int64()),
                        "value": pa.array(v, pa.float64()),
                    }
                )
                for s, t, v in rows
            ]
            con = duckdb.connect(url.removeprefix("duckdb://"))
            t0 = time.perf_counter()
            for table in tables:
                con.begin()
                con.register("staged", table)
                con.execute("INSERT INTO metric_points SELECT series_id, t, value FROM staged")
                con.unregister("staged")
                con.commit()
            elapsed = time.perf_counter() - t0
            con.close()
            return elapsed
        import psycopg

        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for s, t, v in rows:
                with (
                    conn.transaction(),
                    conn.cursor() as cur,
                    cur.copy("COPY metric_points (series_id, t, value) FROM STDIN") as copy,
                ):
                    for row in zip(s, t, v, strict=True):
                        copy.write_row(row)
            return time.perf_counter() - t0


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--points", type=int, default=2_000_000, help="total points")
    parser.add_argument("--per-request", type=int, default=100_000)
    parser.add_argument("--per-series", type=int, default=5_000, help="points per series item")
    parser.add_argument("--concurrency", default="1,2", help="client connections per API run")
    args = parser.parse_args()
    n_points = 200_000 if args.quick else args.points
    levels = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    if args.quick:
        levels = levels[:1]
    environment_banner(args.db, f"{n_points:,} points, {args.per_request:,} per request")
    with Stopwatch() as gen:
        bodies = make_bodies(n_points, args.per_request, args.per_series)
    size = sum(map(len, bodies))
    print(
        f"generated {n_points:,} points in {gen.wall:.1f} s: {len(bodies)} bodies, "
        f"{size / 1e6:.1f} MB ({size / n_points:.1f} bytes per point)",
        flush=True,
    )
    best = max(api_run(args.db, args.pg_admin, bodies, n_points, c) for c in levels)
    inproc = in_process(args.db, args.pg_admin, bodies, n_points)
    raw_rate = n_points / raw_append(args.db, args.pg_admin, bodies)
    how = "Arrow append" if args.db == "duckdb" else "COPY"
    summary = Report(f"raw baseline ({how} of bare points into metric_points, no rollups)")
    summary.line(f"points/s raw {how}", fmt_rate(raw_rate, "points/s"))
    summary.line("API best points/s", fmt_rate(best, "points/s"))
    summary.line("in-process points/s", fmt_rate(inproc, "points/s"))
    summary.ratio("API / raw", best, raw_rate, "1.0 = as fast as the raw append")
    summary.ratio("in-process / raw", inproc, raw_rate)
    summary.line("target", "≥ 300,000 points/s on DuckDB through the API")


if __name__ == "__main__":
    main()
