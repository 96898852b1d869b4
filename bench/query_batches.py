"""The batch dashboard's reads on a large store, through a real server process.

Loads N runs (default 10,000,000) straight into the ``runs`` table with SQL (DuckDB range() /
PostgreSQL generate_series; not through HTTP) in the shape the writer stores: 4 envs, 40
pipelines, one batch per env per day over a long history (today's batches still running),
uuid run ids, and yesterday's prod batch with 10,000 processes. The ``batches`` aggregates are
then computed with the writer's refresh SQL over all runs and spot-checked against the
writer's own refresh code. Then it measures p50/p95 over HTTP of

  (a) batch summary + first page of the 10,000-process batch
      (GET /api/v1/batches/{id}, then GET /api/v1/batches/{id}/runs?page=1&page_size=50)
  (b) batch list GET /api/v1/batches?since=7d&env=prod

and the same work as raw SQL on the database (ratio API/raw), plus the store methods called
in-process (Python without HTTP). GET /api/v1/pipelines and GET /api/v1/runs/{run_id} are
timed for the record.

    .venv/bin/python bench/query_batches.py --db duckdb [--runs 10000000] [--keep FILE]
    .venv/bin/python bench/query_batches.py --db postgres --quick
    .venv/bin/python bench/query_batches.py --db postgres --keep flowdeck_bench_q10m

``--keep`` names a DuckDB file (duckdb) or a database (postgres) that is reused when it already
holds the requested number of runs, and is not deleted at the end.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common import (
    ERRORS,
    PIPELINES,
    TEAMS,
    MachineLoad,
    RawConnection,
    Report,
    Server,
    StageTimer,
    base_parser,
    bench_database,
    environment_banner,
    instrument_store,
    latency_summary,
    make_runs,
    ms,
    open_sql_store,
    print_breakdown,
    validate,
)
from flowdeck.store.sql import BATCH_COLUMNS, RUN_COLUMNS, batch_aggregates_sql

BIG_BATCH = 10_000
ENV_SIZES = {"prod": 4_000, "uat": 1_500, "test": 1_500, "dev": 1_000}
FIRST_BATCH_ID = 1_000_000
DAY = 86_400.0


# -- what to load ------------------------------------------------------------------------------
@dataclass(frozen=True)
class BatchDef:
    batch_id: int
    env: str
    start_epoch: float  # when its first process starts
    n: int  # processes
    fail_rate: float
    today: bool  # still running: the tail of the batch is RUNNING / PENDING


def plan_batches(n_runs: int, now: datetime, seed: int = 11) -> list[BatchDef]:
    """One batch per env per day, going back from today until ``n_runs`` processes are
    placed; yesterday's prod batch has BIG_BATCH processes. Batch ids (process_queue_id)
    increase with time."""
    rng = random.Random(seed)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    envs = sorted(ENV_SIZES, key=lambda e: -ENV_SIZES[e])
    planned: list[tuple[float, int, str, int, float, bool]] = []
    total, day = 0, 0
    while total < n_runs:
        for order, env in enumerate(envs):
            if day == 1 and env == "prod":
                n = BIG_BATCH
            else:
                n = round(ENV_SIZES[env] * rng.uniform(0.8, 1.2))
            n = min(n, n_runs - total)
            if n <= 0:
                break
            start = now.timestamp() - 3 * 3600 if day == 0 else midnight - day * DAY + 7200
            fail = rng.choice((0.0, 0.0, 0.0, 0.0, 0.002, 0.01, 0.05))
            planned.append((start, order, env, n, fail, day == 0))
            total += n
        day += 1
    planned.sort()
    return [
        BatchDef(FIRST_BATCH_ID + i, env, start, n, fail, today)
        for i, (start, _, env, n, fail, today) in enumerate(planned)
    ]


def _array(items: Sequence[str]) -> str:
    return "(ARRAY[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "])"


def run_expressions(backend: str) -> dict[str, str]:
    """How each column of ``runs`` is generated (in the form the writer stores it), from the
    per-process values of the inner query (status, s_epoch, dur, rr, inv, ins, upd, u1..u7)."""
    json = "" if backend == "duckdb" else "::jsonb"
    done = "status IN ('SUCCESS', 'FAILED')"
    created = "to_timestamp(CASE WHEN status = 'PENDING' THEN start_epoch ELSE s_epoch END)"
    return {
        "run_id": "gen_random_uuid()::TEXT",
        "project": "'default'",
        "pipeline": f"{_array(PIPELINES)}[i % 40 + 1]",
        "batch_id": "batch_id::TEXT",
        "env": "env",
        "status": "status",
        "started_at": "CASE WHEN status <> 'PENDING' THEN to_timestamp(s_epoch) END",
        "ended_at": f"CASE WHEN {done} THEN to_timestamp(s_epoch + dur) END",
        "duration_s": f"CASE WHEN {done} THEN dur END",
        "rows_read": f"CASE WHEN {done} THEN rr END",
        "rows_written": f"CASE WHEN {done} THEN rr - inv END",
        "rows_invalid": f"CASE WHEN {done} THEN inv END",
        "rows_inserted": "CASE WHEN status <> 'PENDING' THEN ins END",
        "rows_updated": "CASE WHEN status <> 'PENDING' THEN upd END",
        "dq_errors": f"CASE WHEN {done} THEN inv ELSE 0 END",
        "read_throughput": f"CASE WHEN {done} THEN rr / dur END",
        "write_throughput": f"CASE WHEN {done} THEN (rr - inv) / dur END",
        "custom_stats": f"""(CASE WHEN status <> 'PENDING' THEN
     '{{"sku_count":' || floor(u2 * 200000)::BIGINT || ',"promo_count":'
     || floor(u5 * 500)::BIGINT || ',"scd2_new":' || ins || ',"scd2_changed":' || upd
     || ',"stage":"load"}}'
   ELSE '{{}}' END){json}""",
        "labels": f"""('{{"retailer":"retailer_'
   || lpad((floor(i / 40.0)::BIGINT % 250)::TEXT, 3, '0')
   || '","team":"' || {_array(TEAMS)}[i % 5 + 1] || '","schedule":"daily"}}'){json}""",
        "error_message": f"CASE WHEN status = 'FAILED' THEN {_array(ERRORS)}[i % 4 + 1] END",
        "derived": f"""CASE WHEN {done}
         THEN 'dq_errors,duration_s,read_throughput,rows_inserted,rows_updated,write_throughput'
       WHEN status = 'RUNNING' THEN 'dq_errors,rows_inserted,rows_updated'
       ELSE 'dq_errors' END""",
        "created_at": created,
        "updated_at": f"""to_timestamp(CASE WHEN {done} THEN s_epoch + dur
                    WHEN status = 'RUNNING' THEN s_epoch ELSE start_epoch END)""",
        "sort_at": created,  # started_at, else created_at (what the writer stores)
    }


def insert_runs_sql(backend: str) -> str:
    """INSERT .. SELECT of every process of the batches with ids in [:lo, :hi], in the order
    the writer would have stored them (by time), in the writer's stored form. The columns
    are flowdeck's own (store/sql.py RUN_COLUMNS); a column this loader cannot generate
    stops the bench with its name."""
    if backend == "duckdb":
        series = "range(b.n) AS t(i)"
        rand = "(hash(b.batch_id, t.i, {k}) % 1000000) / 1000000.0"
        lo_hi = "$lo AND $hi"
    else:
        series = "generate_series(0, b.n - 1) AS t(i)"
        rand = "random()"
        lo_hi = "@LO AND @HI"
    exprs = run_expressions(backend)
    unknown = [c for c in RUN_COLUMNS if c not in exprs]
    if unknown:
        raise SystemExit(
            f"query_batches.py cannot generate runs column(s) {', '.join(unknown)}: "
            "teach run_expressions() how the writer fills them"
        )
    draws = ", ".join(f"{rand.format(k=k)} AS u{k}" for k in range(1, 8))
    select = ",\n  ".join(f"{exprs[c]} AS {c}" for c in RUN_COLUMNS)
    sql = f"""
INSERT INTO runs ({", ".join(RUN_COLUMNS)})
SELECT
  {select}
FROM (
  SELECT *,
    CASE WHEN today AND i >= n * 0.75 THEN 'PENDING'
         WHEN today AND i >= n * 0.6 THEN 'RUNNING'
         WHEN u1 < fail_rate THEN 'FAILED' ELSE 'SUCCESS' END AS status,
    start_epoch + (i::float8 / n) * 14400 + u2 * 600 AS s_epoch,
    5 + u3 * u3 * 3600 AS dur,
    floor(1000 + u4 * 5000000)::BIGINT AS rr,
    CASE WHEN u5 < 0.2 THEN floor(u6 * 50)::BIGINT ELSE 0 END AS inv,
    floor(u6 * 10000)::BIGINT AS ins,
    floor(u7 * 5000)::BIGINT AS upd
  FROM (
    SELECT b.batch_id, b.env, b.start_epoch, b.n, b.fail_rate, b.today, t.i, {draws}
    FROM bench_bdef b, {series}
    WHERE b.batch_id BETWEEN {lo_hi}
  ) AS drawn
) AS g
ORDER BY {list(RUN_COLUMNS).index("created_at") + 1}
"""
    if backend != "duckdb":  # psycopg's placeholders: a literal % is written %%
        sql = sql.replace("%", "%%").replace("@LO", "%(lo)s").replace("@HI", "%(hi)s")
    return sql


def runs_indexes(backend: str) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of every secondary index on ``runs`` that flowdeck's
    migrations leave on ``backend``: dropped before the bulk load and created again after it."""
    from flowdeck.store import schema

    out: dict[str, str] = {}
    for version in sorted(schema.MIGRATIONS):
        for statement in schema.statements(version, backend):
            words = statement.split()
            if words[:2] == ["CREATE", "INDEX"] and words[3:5] == ["ON", "runs"]:
                out[words[2]] = statement
            elif words[:2] == ["DROP", "INDEX"]:
                out.pop(words[2], None)
    return list(out.items())


def has_table(cur: Any, name: str) -> bool:
    cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = '" + name + "'")
    return bool(cur.fetchone()[0])


def pipelines_recount_sql() -> str | None:
    """The writer's recount of pipeline states (store/sql.py), when this flowdeck has a
    ``pipelines`` table; it reads the keys to recount from ``staged_pkeys``."""
    from flowdeck.store import sql

    recount = getattr(sql, "_RECOUNT_PIPELINES", None)
    columns = getattr(sql, "PIPELINE_COLUMNS", None)
    if recount is None or columns is None:
        return None
    return f"INSERT INTO pipelines ({', '.join(columns)})\n{recount}"


# The writer's own aggregate definition (store/sql.py), over every batch at once.
AGGREGATE_BATCHES = batch_aggregates_sql("runs r", "max(r.updated_at)")


def _chunks_of(defs: Sequence[BatchDef], rows_per_chunk: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    lo, size = defs[0].batch_id, 0
    for d in defs:
        size += d.n
        if size >= rows_per_chunk:
            out.append((lo, d.batch_id))
            lo, size = d.batch_id + 1, 0
    if size:
        out.append((lo, defs[-1].batch_id))
    return out


def _progress(done: int, total: int, t0: float) -> None:
    rate = done / max(time.perf_counter() - t0, 1e-9)
    print(f"    {done:>12,} / {total:,} runs  ({rate:,.0f} rows/s)", flush=True)


def load_duckdb(path: str, defs: Sequence[BatchDef], n_runs: int) -> None:
    import duckdb
    import pyarrow as pa

    from common import migrate

    migrate(f"duckdb:///{path}")
    con = duckdb.connect(path)
    for name, _ in runs_indexes("duckdb"):
        con.execute(f"DROP INDEX IF EXISTS {name}")
    bdef = pa.table(
        {
            "batch_id": [d.batch_id for d in defs],
            "env": [d.env for d in defs],
            "start_epoch": [d.start_epoch for d in defs],
            "n": [d.n for d in defs],
            "fail_rate": [d.fail_rate for d in defs],
            "today": [d.today for d in defs],
        }
    )
    con.register("bdef_arrow", bdef)
    con.execute("CREATE OR REPLACE TABLE bench_bdef AS SELECT * FROM bdef_arrow")
    con.unregister("bdef_arrow")
    sql = insert_runs_sql("duckdb")
    t0, done, printed = time.perf_counter(), 0, 0
    sizes = {d.batch_id: d.n for d in defs}
    for lo, hi in _chunks_of(defs, 250_000):
        con.execute(sql, {"lo": lo, "hi": hi})
        done += sum(sizes[b] for b in range(lo, hi + 1))
        if done - printed >= 2_000_000:
            printed = done
            _progress(done, n_runs, t0)
    _progress(done, n_runs, t0)
    con.execute("DROP TABLE bench_bdef")
    step("  secondary indexes", lambda: [con.execute(sql) for _, sql in runs_indexes("duckdb")])
    step("  batches aggregates", lambda: con.execute(AGGREGATE_BATCHES))
    recount = pipelines_recount_sql()
    if recount is not None and has_table(con, "pipelines"):
        con.execute(
            "CREATE TEMP TABLE staged_pkeys AS SELECT DISTINCT project, pipeline, env FROM runs"
        )
        step("  pipelines (the writer's recount SQL)", lambda: con.execute(recount))
        con.execute("DROP TABLE staged_pkeys")
    step("  checkpoint", lambda: con.execute("CHECKPOINT"))
    con.close()


def load_postgres(url: str, defs: Sequence[BatchDef], n_runs: int, workers: int) -> None:
    import psycopg

    from common import migrate

    migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for name, _ in runs_indexes("postgresql"):
            conn.execute(f"DROP INDEX IF EXISTS {name}")
        conn.execute("ALTER TABLE runs DROP CONSTRAINT IF EXISTS runs_pkey")
        conn.execute(
            "CREATE UNLOGGED TABLE bench_bdef (batch_id BIGINT PRIMARY KEY, env TEXT, "
            "start_epoch float8, n INTEGER, fail_rate float8, today BOOLEAN)"
        )
        with conn.cursor() as cur, cur.copy("COPY bench_bdef FROM STDIN") as copy:
            for d in defs:
                copy.write_row((d.batch_id, d.env, d.start_epoch, d.n, d.fail_rate, d.today))
    sql = insert_runs_sql("postgres")
    sizes = {d.batch_id: d.n for d in defs}
    chunks = _chunks_of(defs, 250_000)
    lock = threading.Lock()
    state = {"done": 0, "next": 0, "printed": 0}
    t0 = time.perf_counter()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET synchronous_commit = off")
                while True:
                    with lock:
                        if state["next"] >= len(chunks) or errors:
                            return
                        lo, hi = chunks[state["next"]]
                        state["next"] += 1
                    conn.execute(sql, {"lo": lo, "hi": hi})
                    with lock:
                        state["done"] += sum(sizes[b] for b in range(lo, hi + 1))
                        if state["done"] - state["printed"] >= 2_000_000:
                            state["printed"] = state["done"]
                            _progress(state["done"], n_runs, t0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    _progress(state["done"], n_runs, t0)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("DROP TABLE bench_bdef")
        step("  primary key", lambda: conn.execute("ALTER TABLE runs ADD PRIMARY KEY (run_id)"))
        indexes = runs_indexes("postgresql")
        step("  secondary indexes", lambda: [conn.execute(sql) for _, sql in indexes])
        step("  batches aggregates", lambda: conn.execute(AGGREGATE_BATCHES))
        recount = pipelines_recount_sql()
        with conn.cursor() as cur:
            pipelines = recount is not None and has_table(cur, "pipelines")
        if recount is not None and pipelines:
            conn.execute(
                "CREATE TEMP TABLE staged_pkeys AS SELECT DISTINCT project, pipeline, env FROM runs"
            )
            step("  pipelines (the writer's recount SQL)", lambda: conn.execute(recount))
            conn.execute("DROP TABLE staged_pkeys")
        step("  VACUUM ANALYZE", lambda: conn.execute("VACUUM (ANALYZE)"))
        step("  CHECKPOINT", lambda: conn.execute("CHECKPOINT"))


def step(name: str, fn: Callable[[], Any]) -> None:
    t0 = time.perf_counter()
    fn()
    print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)


# -- facts about the loaded store --------------------------------------------------------------
@dataclass(frozen=True)
class Facts:
    runs: int
    batches: int
    big_batch: str
    big_total: int
    sample_run: str
    envs: int
    pipelines: int
    first_day: datetime
    last_day: datetime


def read_facts(url: str) -> Facts:
    """What the store holds (and the ids to query), read with the store's own reader."""
    store = open_sql_store(url)
    try:
        with store.reader() as cur:
            cur.execute("SELECT count(*) FROM runs")
            runs = int(cur.fetchone()[0])
            cur.execute(
                "SELECT count(*), count(DISTINCT env), min(sort_at), max(sort_at) FROM batches"
            )
            batches, envs, first, last = cur.fetchone()
            cur.execute("SELECT batch_id, total FROM batches ORDER BY total DESC, sort_at DESC")
            big, big_total = cur.fetchone()
        page = store.list_batch_runs(_run_query(big))[1]
        with store.reader() as cur:
            cur.execute("SELECT count(DISTINCT pipeline) FROM runs")
            pipelines = int(cur.fetchone()[0])
        return Facts(
            runs,
            int(batches),
            big,
            int(big_total),
            page[len(page) // 2].run_id,
            int(envs),
            pipelines,
            first,
            last,
        )
    finally:
        store.close()


def schema_matches(url: str) -> bool:
    """Does a kept database have the tables and columns this flowdeck reads?"""
    store = open_sql_store(url)
    try:
        with store.reader() as cur:
            cur.execute(f"SELECT {', '.join(RUN_COLUMNS)} FROM runs LIMIT 1")
            cur.fetchall()
            cur.execute(f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches LIMIT 1")
            cur.fetchall()
            if pipelines_recount_sql() is not None:
                cur.execute("SELECT count(*) FROM pipelines")
                return bool(cur.fetchone()[0])
        return True
    except Exception as exc:
        print(f"kept database does not match this flowdeck's schema: {exc}".splitlines()[0])
        return False
    finally:
        store.close()


def _run_query(batch_id: str) -> Any:
    from flowdeck.store import RunQuery

    return RunQuery(project="default", batch_id=batch_id, limit=50, offset=0)


def verify_and_probe(url: str, facts: Facts, report: Report) -> None:
    """Recompute a sample of batch aggregates through the writer's own code path (a no-op
    upsert of one run that refreshes the sampled batch keys) and compare with the loaded
    aggregates; then time the writer's group commit of 16 new runs on this store, as a
    probe of ingest cost at this size (those runs are removed again)."""
    from flowdeck.events import EventBus
    from flowdeck.ingest.writer import Writer, WriteRequest
    from flowdeck.store import BatchQuery, WritePlan

    store = open_sql_store(url)
    try:
        recent = store.list_batches(BatchQuery(since=datetime.now(UTC) - timedelta(days=3)))
        old = store.list_batches(
            BatchQuery(since=facts.first_day, until=facts.first_day + timedelta(days=30))
        )
        sample = {b.key: b for b in [*recent, *old[:8]]}
        sample[("default", facts.big_batch)] = store.get_batch("default", facts.big_batch)
        anchor = store.get_run(facts.sample_run)
        with store.reader() as cur:
            anchor_record = store._stored_runs(cur, [anchor.run_id])[anchor.run_id]

        def plan(existing: dict[str, Any]) -> WritePlan:
            # The writer may first guess the run is new (existing is then empty): writing
            # it as new fails on the stored one, and the writer looks it up and plans again.
            return WritePlan([existing.get(anchor.run_id, anchor_record)], set(sample))

        t0 = time.perf_counter()
        refreshed = store.upsert_runs([anchor.run_id], plan)
        refresh_s = time.perf_counter() - t0
        same = 0
        for row in refreshed:
            before = sample[row.key]
            fields = [f for f in BATCH_COLUMNS if f != "updated_at"]
            if all(getattr(row, f) == getattr(before, f) for f in fields):
                same += 1
            else:
                diff = [f for f in fields if getattr(row, f) != getattr(before, f)]
                report.line(f"MISMATCH batch {row.batch_id}", ", ".join(diff))
        report.line(
            "batch aggregates vs the writer's refresh",
            f"{same} / {len(sample)} identical (recent, oldest and the big batch)",
        )
        report.line(f"writer refresh of {len(sample)} batches (in-process)", ms(refresh_s * 1000))

        has_pipelines = pipelines_recount_sql() is not None
        if has_pipelines:  # the probe's runs are removed afterwards: so is their effect
            with store.write_transaction() as cur:
                cur.execute("CREATE TABLE bench_pipelines_backup AS SELECT * FROM pipelines")
        writer = Writer(store, EventBus())
        # Today's runs of new batches, with ids as the API generates them when a pipeline
        # sends none: what steady-state ingest adds to a store of this size.
        probe = make_runs(
            16 * 12,
            prefix="probe",
            first_batch=9_000_000,
            processes_per_batch=16,
            start=datetime.now(UTC) - timedelta(hours=1),
        )
        for run in probe:
            run["run_id"] = str(uuid.uuid4())
        timer = StageTimer()
        times = []
        for i in range(12):
            if i == 2:
                instrument_store(store, timer)
            requests = [WriteRequest(*validate(r, 1)) for r in probe[i * 16 : (i + 1) * 16]]
            t0 = time.perf_counter()
            with timer.stage("writer: _commit total"):
                writer._commit(requests)
            times.append(time.perf_counter() - t0)
            for r in requests:
                r.future.result()
        median = sorted(times[2:])[len(times[2:]) // 2]
        report.line(
            "writer group commit of 16 new runs here",
            f"{ms(median * 1000)} median (in-process, {16 / median:,.0f} runs/s at this "
            "group size); where it goes:",
        )
        timer.totals["writer: _commit total"] = sum(times[2:])
        sub = Report("  writer commit on this store, per run (10 commits of 16)")
        print_breakdown(sub, timer, 16 * 10, sum(times[2:]))
        with store.write_transaction() as cur:
            ids = ", ".join(f"'{9_000_000 + i}'" for i in range(12))
            cur.execute(f"DELETE FROM runs WHERE project = 'default' AND batch_id IN ({ids})")
            cur.execute(f"DELETE FROM batches WHERE project = 'default' AND batch_id IN ({ids})")
            if has_pipelines:
                cur.execute("DELETE FROM pipelines")
                cur.execute("INSERT INTO pipelines SELECT * FROM bench_pipelines_backup")
                cur.execute("DROP TABLE bench_pipelines_backup")
    finally:
        store.close()


# -- measuring ---------------------------------------------------------------------------------
def measure(fn: Callable[[], Any], iterations: int, warmup: int, budget: float) -> list[float]:
    """Latencies of ``fn`` in seconds: warm-up calls, then up to ``iterations`` calls or
    ``budget`` seconds (at least 3 calls)."""
    for _ in range(warmup):
        fn()
    out: list[float] = []
    deadline = time.perf_counter() + budget
    while len(out) < iterations and (len(out) < 3 or time.perf_counter() < deadline):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def raw_queries(backend: str, url: str, facts: Facts) -> dict[str, Callable[[], Any]]:
    """The same work as the API's answers, as plain SQL on one connection (rows fetched as
    the driver's tuples); returns named callables and keeps the connection on them."""
    since = datetime.now(UTC) - timedelta(days=7)
    batch_sql = f"SELECT {', '.join(BATCH_COLUMNS)} FROM batches"
    run_sql = f"SELECT {', '.join(RUN_COLUMNS)} FROM runs"
    if backend == "duckdb":
        import duckdb

        con = duckdb.connect(url.removeprefix("duckdb://"), read_only=True)
        p = "?"

        def q(sql: str, params: Sequence[Any]) -> list[Any]:
            return con.execute(sql.replace("%s", p), params).fetchall()

    else:
        import psycopg

        pconn = psycopg.connect(url, autocommit=True, options="-c timezone=UTC")

        def q(sql: str, params: Sequence[Any]) -> list[Any]:
            return pconn.execute(sql, params).fetchall()

    b = facts.big_batch
    # the store's order of a pipeline's history (a stored column in newer schemas)
    history_order = "sort_at" if "sort_at" in RUN_COLUMNS else "coalesce(started_at, created_at)"

    def summary_and_page() -> None:
        q(f"{batch_sql} WHERE batch_id = %s ORDER BY project", (b,))
        q("SELECT count(*) FROM runs WHERE project = %s AND batch_id = %s", ("default", b))
        q(
            f"{run_sql} WHERE project = %s AND batch_id = %s "
            "ORDER BY pipeline ASC NULLS LAST, run_id ASC LIMIT 50 OFFSET 0",
            ("default", b),
        )

    def batch_list() -> None:
        q(
            f"{batch_sql} WHERE sort_at >= %s AND env = %s "
            "ORDER BY sort_at DESC, batch_id DESC LIMIT 200",
            (since, "prod"),
        )

    def run_detail() -> None:
        rows = q(f"{run_sql} WHERE run_id = %s", (facts.sample_run,))
        project, pipeline, env = rows[0][1], rows[0][2], rows[0][4]
        q(
            f"{run_sql} WHERE project = %s AND pipeline = %s AND env = %s "
            f"ORDER BY {history_order} DESC, run_id DESC LIMIT 50",
            (project, pipeline, env),
        )

    def close() -> None:
        if backend == "duckdb":
            con.close()
        else:
            pconn.close()

    return {
        "(a) summary + first page": summary_and_page,
        "(b) batch list since=7d env=prod": batch_list,
        "run detail + history": run_detail,
        "close": close,
    }


def store_calls(url: str, facts: Facts) -> tuple[dict[str, Callable[[], Any]], Any]:
    """The same work through flowdeck's store (SQL + Python conversion, no HTTP)."""
    from flowdeck.store import BatchQuery

    store = open_sql_store(url)
    b = facts.big_batch

    def summary_and_page() -> None:
        store.find_batches(b)
        store.find_batches(b)
        store.list_batch_runs(_run_query(b))

    def batch_list() -> None:
        since = datetime.now(UTC) - timedelta(days=7)
        store.list_batches(BatchQuery(since=since, env="prod"))

    def run_detail() -> None:
        run = store.get_run(facts.sample_run)
        store.list_pipeline_runs(run.project, run.pipeline, run.env, 50)

    def pipelines() -> None:
        store.list_pipelines()

    return (
        {
            "(a) summary + first page": summary_and_page,
            "(b) batch list since=7d env=prod": batch_list,
            "run detail + history": run_detail,
            "pipelines": pipelines,
        },
        store,
    )


async def http_measure(
    base: str, facts: Facts, iterations: int, warmup: int, budget: float
) -> dict[str, list[float]]:
    from common import host_port

    host, port = host_port(base)
    conn = await RawConnection(host, port).connect()
    b = facts.big_batch
    summary = conn.build("GET", f"/api/v1/batches/{b}")
    first_page = conn.build("GET", f"/api/v1/batches/{b}/runs?page=1&page_size=50")
    batch_list = conn.build("GET", "/api/v1/batches?since=7d&env=prod")
    run = conn.build("GET", f"/api/v1/runs/{facts.sample_run}")
    pipelines = conn.build("GET", "/api/v1/pipelines")

    async def get(request: bytes) -> bytes:
        status, body = await conn.send(request)
        if status != 200:
            raise RuntimeError(f"{request.split(b' ')[1]!r} answered {status}: {body[:300]!r}")
        return body

    async def timed(requests: Sequence[bytes], n: int, warm: int, limit: float) -> list[float]:
        for _ in range(warm):
            for r in requests:
                await get(r)
        out: list[float] = []
        deadline = time.perf_counter() + limit
        while len(out) < n and (len(out) < 3 or time.perf_counter() < deadline):
            t0 = time.perf_counter()
            for r in requests:
                await get(r)
            out.append(time.perf_counter() - t0)
        return out

    results = {
        "(a) summary + first page": await timed([summary, first_page], iterations, warmup, budget),
        "(a1) GET /batches/{id}": await timed([summary], iterations, warmup, budget),
        "(a2) GET /batches/{id}/runs page 1": await timed([first_page], iterations, warmup, budget),
        "(b) batch list since=7d env=prod": await timed([batch_list], iterations, warmup, budget),
        "run detail + history": await timed([run], iterations, warmup, budget),
        "pipelines": await timed([pipelines], iterations, 1, budget),
    }
    page = await get(first_page)
    results["_page_bytes"] = [float(len(page))]
    await conn.close()
    return results


def summarize(report: Report, name: str, samples: Sequence[float]) -> dict[str, float]:
    lat = latency_summary(samples)
    report.line(
        name,
        f"p50 {lat['p50']:8.2f} ms   p95 {lat['p95']:8.2f} ms   (n={len(samples)})",
    )
    return lat


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=10_000_000, help="runs stored (default 10M)")
    parser.add_argument("--iterations", type=int, default=200, help="samples per figure")
    parser.add_argument("--keep", metavar="FILE|DBNAME", help="reuse / keep this database")
    parser.add_argument(
        "--load-workers", type=int, default=2, help="PostgreSQL loading connections (default 2)"
    )
    args = parser.parse_args()
    n_runs = 200_000 if args.quick else args.runs
    iterations = 30 if args.quick else args.iterations
    warmup = 5 if args.quick else 20
    budget = 5.0 if args.quick else 60.0
    if n_runs < 50_000:
        parser.error("--runs must be at least 50000")
    started = time.perf_counter()
    environment_banner(args.db, f"{n_runs:,} runs stored")

    with bench_database(args.db, args.pg_admin, "query", args.keep) as where:
        url, path = where.url, where.path
        # -- load (or reuse)
        reuse = False
        if where.existed:
            try:
                reuse = schema_matches(url) and read_facts(url).runs == n_runs
            except Exception as exc:
                print(f"cannot reuse {args.keep}: {exc}")
            if not reuse:
                print(f"{args.keep} does not hold {n_runs:,} runs: loading afresh")
        if not reuse:
            where.clear()
            defs = plan_batches(n_runs, datetime.now(UTC))
            print(
                f"loading {n_runs:,} runs in {len(defs):,} batches "
                f"({len(defs) // len(ENV_SIZES):,} days x {len(ENV_SIZES)} envs)",
                flush=True,
            )
            t0 = time.perf_counter()
            if args.db == "duckdb":
                load_duckdb(path, defs, n_runs)
            else:
                load_postgres(url, defs, n_runs, args.load_workers)
            print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        else:
            print(f"reusing {args.keep}", flush=True)

        facts = read_facts(url)
        report = Report(f"store: {args.db}")
        report.line("runs / batches", f"{facts.runs:,} / {facts.batches:,}")
        report.line(
            "history",
            f"{facts.first_day:%Y-%m-%d} .. {facts.last_day:%Y-%m-%d}, "
            f"{facts.envs} envs, {facts.pipelines} pipelines",
        )
        report.line("big batch", f"{facts.big_batch} with {facts.big_total:,} processes")
        size = where.size_bytes()
        report.line("database size", f"{size / 2**30:.2f} GiB")
        verify_and_probe(url, facts, report)

        # -- raw SQL and store calls (before the server: DuckDB allows one process per file)
        raw = raw_queries(args.db, url, facts)
        raw_results = {
            name: measure(fn, iterations, warmup, budget)
            for name, fn in raw.items()
            if name != "close"
        }
        raw["close"]()
        calls, store = store_calls(url, facts)
        store_results = {
            name: measure(fn, iterations, 1 if name == "pipelines" else warmup, budget)
            for name, fn in calls.items()
        }
        store.close()

        with Server(url) as server, MachineLoad() as machine:
            cpu0 = server.cpu_seconds()
            http = asyncio.run(http_measure(server.base, facts, iterations, warmup, budget))
            server_cpu = server.cpu_seconds() - cpu0

        out = Report(f"batch dashboard reads, {facts.runs:,} runs ({args.db})")
        out.section("HTTP through the server (one keep-alive client, sequential)")
        api = {
            name: summarize(out, name, s) for name, s in http.items() if not name.startswith("_")
        }
        out.line("first page response size", f"{http['_page_bytes'][0] / 1024:.1f} KiB")
        out.line(
            "machine CPU busy during the HTTP phase",
            f"{machine.busy:.0%} of all cores (server process: {server_cpu:.1f} s CPU; "
            "well above 50% means other work ran beside it)",
        )
        out.section("raw SQL on one connection (same queries, driver tuples)")
        rawlat = {name: summarize(out, name, s) for name, s in raw_results.items()}
        out.section("flowdeck store in-process (SQL + Python rows, no HTTP)")
        storelat = {name: summarize(out, name, s) for name, s in store_results.items()}
        out.section("ratios (p50 and p95)")
        for name in (
            "(a) summary + first page",
            "(b) batch list since=7d env=prod",
            "run detail + history",
        ):
            out.line(
                f"API / raw  {name}",
                f"p50 {api[name]['p50'] / rawlat[name]['p50']:.2f}x   "
                f"p95 {api[name]['p95'] / rawlat[name]['p95']:.2f}x",
            )
        for name in ("(a) summary + first page", "(b) batch list since=7d env=prod"):
            out.line(
                f"API / store  {name}",
                f"p50 {api[name]['p50'] / storelat[name]['p50']:.2f}x   "
                f"p95 {api[name]['p95'] / storelat[name]['p95']:.2f}x",
            )
        out.section("targets (figures, not verdicts)")
        out.line("(a) p95, target <= 25 ms", ms(api["(a) summary + first page"]["p95"]))
        out.line("(b) p95, target <= 50 ms", ms(api["(b) batch list since=7d env=prod"]["p95"]))
    print(f"\ntotal wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
