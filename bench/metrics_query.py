"""Metric query: POST /api/v1/metrics/query over 30 days at a 1 h step with group_by, on a
store of N raw points (default 100,000,000) with their rollups.

The store is filled in this process through flowdeck's own write path for points
(``store.add_points``: the series registry, the raw points and every rollup level with its
sketch bins, computed by flowdeck's SQL), 1,000,000 points per commit and no HTTP, so that
100M points load in minutes. The data: one metric ``http.request_ms`` with 100 series
(service × region, 20 × 5), each one point every ~2.6 s over 30 days, values lognormal
around a median that differs per series. The query groups by ``service`` (20 groups).

Then a real ``flowdeck serve`` answers, on one keep-alive connection, sequentially: avg, sum,
max, p95 (and count, for the check) over the 30 days at 1 h, p50/p95 over ``--iterations``
samples each. **Raw:** the same answer computed by plain SQL over the raw points table (join
to the series for the tag; count/sum/max in one query, exact p95 in another), a few samples.
Both answers are compared bucket by bucket: count and max exactly, sum and avg within 1e-9
relative, p95 within the sketch's 1 % of the exact value.

    .venv/bin/python bench/metrics_query.py --db duckdb [--points 100000000] [--keep FILE]
    .venv/bin/python bench/metrics_query.py --db postgres [--points 10000000] [--keep DBNAME]

``--keep`` names a DuckDB file or a PostgreSQL database that is reused when it already holds
the same number of points (loading 100M points takes several minutes).
"""

from __future__ import annotations

import asyncio
import math
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from common import (
    MachineLoad,
    RawConnection,
    Report,
    Server,
    base_parser,
    bench_database,
    environment_banner,
    host_port,
    latency_summary,
    ms,
    open_sql_store,
)
from flowdeck.store.metrics_sql import BIN_TABLES
from flowdeck.timeseries.points import PointBatch, SeriesKey

METRIC = "http.request_ms"
SERVICES = 20
REGIONS = 5
DAYS = 30
START = datetime(2025, 11, 1, tzinfo=UTC)
START_US = int(START.timestamp()) * 1_000_000
END = START + timedelta(days=DAYS)
PER_COMMIT = 1_000_000
AGGREGATIONS = ("avg", "sum", "max", "p95", "count")
SIGMA = 0.7  # of ln(value): a latency-like spread
# The data is from a fixed month in the past: the server's compaction must not drop it (the
# raw points stay for the raw SQL), so every level is kept for 100 years.
KEEP_EVERYTHING = {
    f"FLOWDECK_METRIC_RETENTION_{level}_DAYS": "36500" for level in ("RAW", "1M", "5M", "1H", "1D")
}


def series_keys() -> list[SeriesKey]:
    return [
        SeriesKey("default", METRIC, (("region", f"r{r}"), ("service", f"svc{s:02d}")))
        for s in range(SERVICES)
        for r in range(REGIONS)
    ]


def medians(n: int) -> list[float]:
    """ln of each series' median: services from ~5 ms to ~150 ms, regions a little apart."""
    return [math.log(5.0 * 1.2 ** (i // REGIONS)) + 0.05 * (i % REGIONS) for i in range(n)]


def generate(n_points: int, per_commit: int = PER_COMMIT) -> Iterator[PointBatch]:
    """The points in time order, ``per_commit`` at a time (Arrow columns, no Python rows)."""
    keys = series_keys()
    n_series = len(keys)
    per_series = n_points // n_series
    period = DAYS * 86_400 * 1_000_000 / per_series
    offsets = [round(i * period / n_series) for i in range(n_series)]
    mus = pa.array(medians(n_series), pa.float64())
    steps = max(per_commit // n_series, 1)
    for chunk, first in enumerate(range(0, per_series, steps)):
        count = min(steps, per_series - first)
        base = pc.cast(
            pc.floor(pc.multiply(pa.array(range(first, first + count), pa.float64()), period)),
            pa.int64(),
        )
        times = pa.concat_arrays([pc.add(base, START_US + off) for off in offsets])
        index = pa.concat_arrays(
            [pa.repeat(pa.scalar(i, pa.int32()), count) for i in range(n_series)]
        )
        n = len(times)
        u1 = pc.subtract(1.0, pc.random(n, initializer=2 * chunk + 1))
        u2 = pc.random(n, initializer=2 * chunk + 2)
        z = pc.multiply(pc.sqrt(pc.multiply(pc.ln(u1), -2.0)), pc.cos(pc.multiply(u2, 2 * math.pi)))
        values = pc.exp(pc.add(pc.take(mus, index), pc.multiply(z, SIGMA)))
        yield PointBatch(
            series=keys,
            where=[f"bench[{i}]" for i in range(n_series)],
            series_index=index,
            times_us=times,
            values=values,
        )


def load(url: str, n_points: int) -> float:
    """Write the points through the store's own point path; returns seconds."""
    store = open_sql_store(url)
    store.migrate()
    t0 = time.perf_counter()
    done = 0
    shown = 0.0
    try:
        for batch in generate(n_points):
            outcome = store.add_points([batch], 10_000, datetime.now(UTC))
            if outcome != [None]:
                raise RuntimeError(f"points refused: {outcome}")
            done += len(batch)
            if done / n_points >= shown + 0.1:
                shown = done / n_points
                elapsed = time.perf_counter() - t0
                print(
                    f"  {done:>13,} points  {elapsed:6.1f} s  {done / elapsed:,.0f} points/s",
                    flush=True,
                )
    finally:
        store.close()  # DuckDB checkpoints on close
    return time.perf_counter() - t0


def stored_points(url: str) -> int:
    store = open_sql_store(url)
    try:
        with store.reader() as cur:
            store._q(cur, "SELECT count(*) FROM metric_points")
            return int(cur.fetchall()[0][0])
    finally:
        store.close()


def table_rows(url: str) -> dict[str, int]:
    store = open_sql_store(url)
    out = {}
    try:
        with store.reader() as cur:
            for table in ("metric_points", "metric_rollups", *BIN_TABLES.values()):
                store._q(cur, f"SELECT count(*) FROM {table}")
                out[table] = int(cur.fetchall()[0][0])
    finally:
        store.close()
    return out


# -- the answers --------------------------------------------------------------------------------
Answer = dict[tuple[str, int], float]


def query_body(aggregation: str) -> bytes:
    return orjson.dumps(
        {
            "metric": METRIC,
            "start": START.isoformat(),
            "end": END.isoformat(),
            "step": "1h",
            "aggregation": aggregation,
            "group_by": ["service"],
        }
    )


def api_answer(body: bytes) -> Answer:
    data = orjson.loads(body)
    out: Answer = {}
    for series in data["series"]:
        group = series["tags"]["service"]
        for at, value in series["points"]:
            second = int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
            out[(group, second)] = value
    return out


def raw_sql(backend: str) -> tuple[str, str]:
    """(count, sum and max per group and hour; exact p95 per group and hour) over the raw
    points, the tag read from the series' JSON: the plain-SQL way to the same answer."""
    if backend == "duckdb":
        tag, hour, p95 = (
            "json_extract_string(s.tags, '$.service')",
            "p.t // 3600000000 * 3600",
            "quantile_disc(p.value, 0.95)",
        )
        a, b, name = "$a", "$b", "$name"
    else:
        tag, hour, p95 = (
            "s.tags->>'service'",
            "p.t / 3600000000 * 3600",
            "percentile_disc(0.95) WITHIN GROUP (ORDER BY p.value)",
        )
        a, b, name = "%(a)s", "%(b)s", "%(name)s"
    where = (
        "FROM metric_points p JOIN metric_series s ON s.series_id = p.series_id "
        f"WHERE s.project = 'default' AND s.name = {name} AND p.t >= {a} AND p.t < {b} "
        "GROUP BY 1, 2"
    )
    summary = f"SELECT {tag}, {hour}, count(*), sum(p.value), max(p.value) {where}"
    percentile = f"SELECT {tag}, {hour}, {p95} {where}"
    return summary, percentile


def raw_connection(backend: str, url: str) -> tuple[Callable[[str], list[Any]], Callable[[], None]]:
    params = {
        "a": START_US,
        "b": START_US + DAYS * 86_400 * 1_000_000,
        "name": METRIC,
    }
    if backend == "duckdb":
        import duckdb

        con = duckdb.connect(url.removeprefix("duckdb://"), read_only=True)

        def run_duck(sql: str) -> list[Any]:
            return con.execute(sql, params).fetchall()

        return run_duck, con.close
    import psycopg

    conn = psycopg.connect(url, autocommit=True)

    def run_pg(sql: str) -> list[Any]:
        return conn.execute(sql, params).fetchall()

    return run_pg, conn.close


def timed(fn: Callable[[], Any], iterations: int, warmup: int, budget: float) -> list[float]:
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter() + budget
    while len(samples) < iterations:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and len(samples) >= 3:
            break
    return samples


async def http_measure(
    base: str, iterations: int, warmup: int, budget: float
) -> tuple[dict[str, list[float]], dict[str, bytes]]:
    host, port = host_port(base)
    conn = await RawConnection(host, port).connect()
    samples: dict[str, list[float]] = {}
    answers: dict[str, bytes] = {}
    for aggregation in AGGREGATIONS:
        request = conn.build("POST", "/api/v1/metrics/query", query_body(aggregation))
        for _ in range(warmup):
            status, body = await conn.send(request)
            if status != 200:
                raise RuntimeError(f"query {aggregation} answered {status}: {body[:300]!r}")
            answers[aggregation] = body
        got: list[float] = []
        deadline = time.perf_counter() + budget
        while len(got) < iterations:
            t0 = time.perf_counter()
            status, body = await conn.send(request)
            got.append(time.perf_counter() - t0)
            if time.perf_counter() > deadline and len(got) >= 3:
                break
        samples[aggregation] = got
    await conn.close()
    return samples, answers


async def one_query(base: str, body: bytes) -> bytes:
    host, port = host_port(base)
    conn = await RawConnection(host, port).connect()
    status, answer = await conn.send(conn.build("POST", "/api/v1/metrics/query", body))
    await conn.close()
    if status != 200:
        raise RuntimeError(f"query answered {status}: {answer[:300]!r}")
    return answer


def wait_for_cells(base: str, limit: float = 1_800.0) -> float:
    """Seconds from now until the server's first pass over stale percentiles is done (its
    /metrics counter ``flowdeck_metric_percentile_passes_total`` is at least 1)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        with urllib.request.urlopen(base + "/metrics", timeout=30) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            if (
                line.startswith("flowdeck_metric_percentile_passes_total ")
                and float(line.split()[1]) >= 1
            ):
                return time.perf_counter() - t0
        time.sleep(0.5)
    raise RuntimeError(f"the kept percentiles were not ready after {limit:.0f} s")


def compare(answers: dict[str, Answer], raw_rows: list[Any], p95_rows: list[Any]) -> list[str]:
    """Bucket by bucket: API vs raw SQL. Lines to print."""
    exact = {(r[0], int(r[1])): (int(r[2]), float(r[3]), float(r[4])) for r in raw_rows}
    p95 = {(r[0], int(r[1])): float(r[2]) for r in p95_rows}
    lines = []
    for aggregation in ("count", "sum", "avg", "max", "p95"):
        got = answers[aggregation]
        same_keys = set(got) == set(exact)
        worst = 0.0
        bad = 0
        for key, (n, total, hi) in exact.items():
            value = got.get(key)
            if value is None:
                bad += 1
                continue
            want = {
                "count": n,
                "sum": total,
                "avg": total / n,
                "max": hi,
                "p95": p95.get(key, math.nan),
            }[aggregation]
            rel = abs(value - want) / abs(want) if want else abs(value)
            worst = max(worst, rel)
            limit = {"count": 0.0, "max": 0.0, "sum": 1e-9, "avg": 1e-9, "p95": 0.0101}
            if rel > limit[aggregation]:
                bad += 1
        rule = {
            "count": "exact",
            "max": "exact",
            "sum": "within 1e-9 relative",
            "avg": "within 1e-9 relative",
            "p95": "within 1 % (the sketch's accuracy)",
        }[aggregation]
        lines.append(
            f"{len(exact) - bad:,} / {len(exact):,} buckets {rule}"
            f"{'' if same_keys else ' (bucket sets differ!)'}; largest relative difference "
            f"{worst:.2g}"
        )
    return lines


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument(
        "--points", type=int, help="raw points stored (default 100M DuckDB, 10M PostgreSQL)"
    )
    parser.add_argument("--iterations", type=int, default=100, help="HTTP samples per query")
    parser.add_argument("--raw-iterations", type=int, default=3, help="raw SQL samples")
    parser.add_argument("--keep", metavar="FILE|DBNAME", help="reuse / keep this database")
    args = parser.parse_args()
    default_points = 100_000_000 if args.db == "duckdb" else 10_000_000
    n_points = 2_000_000 if args.quick else args.points or default_points
    n_points -= n_points % len(series_keys())
    iterations = 10 if args.quick else args.iterations
    warmup = 2 if args.quick else 5
    budget = 10.0 if args.quick else 60.0
    started = time.perf_counter()
    environment_banner(args.db, f"{n_points:,} points stored")

    with bench_database(args.db, args.pg_admin, "mquery", args.keep) as where:
        url = where.url
        reuse = False
        if where.existed:
            try:
                reuse = stored_points(url) == n_points
            except Exception as exc:
                print(f"cannot reuse {args.keep}: {exc}")
            if not reuse:
                print(f"{args.keep} does not hold {n_points:,} points: loading afresh")
        if not reuse:
            where.clear()
            print(
                f"loading {n_points:,} points: {len(series_keys())} series, {DAYS} days, "
                f"{PER_COMMIT:,} per commit through store.add_points",
                flush=True,
            )
            seconds = load(url, n_points)
            print(f"loaded in {seconds:.1f} s ({n_points / seconds:,.0f} points/s)", flush=True)
        else:
            print(f"reusing {args.keep}", flush=True)

        store_report = Report(f"store: {args.db}")
        for table, rows in table_rows(url).items():
            store_report.line(f"rows in {table}", f"{rows:,}")
        size = where.size_bytes()
        store_report.line("database size", f"{size / 2**30:.2f} GiB")

        # -- raw SQL first: DuckDB lets one process open the file
        summary_sql, p95_sql = raw_sql(args.db)
        run, close = raw_connection(args.db, url)
        raw_rows = run(summary_sql)
        p95_rows = run(p95_sql)
        raw_summary = timed(lambda: run(summary_sql), args.raw_iterations, 0, budget)
        raw_p95 = timed(lambda: run(p95_sql), args.raw_iterations, 0, budget)
        close()

        with Server(url, env=KEEP_EVERYTHING) as server:
            # Right after a load every bucket is stale (a reused store's are not): one p95
            # answered from the bins while the server computes the kept percentiles beside
            # it; then wait for those.
            t0 = time.perf_counter()
            cold = asyncio.run(one_query(server.base, query_body("p95")))
            stale_query = time.perf_counter() - t0
            kept_after = wait_for_cells(server.base)
            with MachineLoad() as machine:
                cpu0 = server.cpu_seconds()
                http, bodies = asyncio.run(http_measure(server.base, iterations, warmup, budget))
                server_cpu = server.cpu_seconds() - cpu0
        if orjson.loads(cold)["series"] != orjson.loads(bodies["p95"])["series"]:
            raise RuntimeError("the p95 from the bins and from the kept percentiles differ")

        out = Report(f"POST /api/v1/metrics/query, 30 days at 1h by service, {n_points:,} points")
        first = orjson.loads(bodies["avg"])
        out.line(
            "answer",
            f"level {first['level']}, {len(first['series'])} groups, "
            f"{sum(len(s['points']) for s in first['series']):,} points, "
            f"{len(bodies['avg']) / 1024:.0f} KiB",
        )
        out.section("HTTP through the server (one keep-alive client, sequential)")
        api: dict[str, dict[str, float]] = {}
        for aggregation in AGGREGATIONS:
            lat = api[aggregation] = latency_summary(http[aggregation])
            out.line(
                f"{aggregation} p50 / p95 ({len(http[aggregation])} samples)",
                f"{ms(lat['p50'])} / {ms(lat['p95'])}",
            )
        out.line(
            "first p95 after start (stale buckets from the sketch bins; one sample)",
            ms(stale_query * 1000),
        )
        out.line(
            "kept percentiles (5m, 1h, 1d cells) ready after start",
            f"{kept_after:.1f} s; the answers from the bins and from the cells are identical",
        )
        out.line(
            "machine CPU busy during the HTTP phase",
            f"{machine.busy:.0%} of all cores (server process: {server_cpu:.1f} s CPU)",
        )
        out.section("raw SQL over metric_points (one connection)")
        raw_lat = latency_summary(raw_summary)
        raw_p95_lat = latency_summary(raw_p95)
        out.line(
            f"count + sum + max by group and hour ({len(raw_summary)})",
            f"{ms(raw_lat['p50'])} / {ms(raw_lat['p95'])}",
        )
        out.line(
            f"exact p95 by group and hour ({len(raw_p95)})",
            f"{ms(raw_p95_lat['p50'])} / {ms(raw_p95_lat['p95'])}",
        )
        out.section("ratios API p50 / raw p50 (below 1: the API is faster)")
        for aggregation in ("avg", "sum", "max"):
            out.ratio(f"API / raw  {aggregation}", api[aggregation]["p50"], raw_lat["p50"])
        out.ratio("API / raw  p95", api["p95"]["p50"], raw_p95_lat["p50"])
        out.section("the same answer? (API vs raw SQL, per group and hour)")
        answers = {a: api_answer(bodies[a]) for a in AGGREGATIONS}
        for aggregation, line in zip(
            ("count", "sum", "avg", "max", "p95"),
            compare(answers, raw_rows, p95_rows),
            strict=True,
        ):
            out.line(aggregation, line)
        out.section("target (a figure, not a verdict)")
        worst = max(api[a]["p95"] for a in ("avg", "sum", "max", "p95"))
        out.line("p95 <= 50 ms; slowest aggregation's p95", ms(worst))
    print(f"\ntotal wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
