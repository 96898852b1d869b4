"""The store contract: every backend passes the same tests (the ``db_url`` fixture runs each
test on DuckDB and on PostgreSQL)."""

from __future__ import annotations

import contextlib
import random
from datetime import timedelta
from typing import Any

import pytest

from flowdeck.errors import InvalidInput, NotFound, StoreUnavailable
from flowdeck.ingest.writer import Writer
from flowdeck.pipelines import recount
from flowdeck.runs import RunRecord
from flowdeck.store import BatchQuery, RunQuery, Store, WritePlan, open_store
from flowdeck.store import schema as schema_mod
from flowdeck.store.sql import SqlStore
from tests.conftest import T0, FixedClock, run, store_at_version
from tests.test_tallies import count


def test_migrate_is_idempotent_and_versioned(store: Store) -> None:
    assert store.schema_version() == schema_mod.LATEST
    assert store.migrate() == schema_mod.LATEST
    assert store.schema_version() == schema_mod.LATEST


def test_schema_versions_have_no_gap() -> None:
    # A database records each version as applied: a number skipped now would never run.
    assert sorted(schema_mod.MIGRATIONS) == list(range(1, schema_mod.LATEST + 1))


def test_a_newer_schema_is_refused(
    db_url: str, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema_mod, "LATEST", 0)
    other = open_store(db_url) if db_url.startswith("postgres") else store
    try:
        with pytest.raises(StoreUnavailable, match="newer than this flowdeck"):
            other.migrate()
    finally:
        if other is not store:
            other.close()


def _runs_indexes(store: Store) -> set[str]:
    query = (
        "SELECT index_name FROM duckdb_indexes() WHERE table_name = 'runs'"
        if store.backend == "duckdb"
        else "SELECT indexname FROM pg_indexes "
        "WHERE tablename = 'runs' AND indexname <> 'runs_pkey'"
    )
    assert isinstance(store, SqlStore)
    with store.reader() as cur:
        cur.execute(query)
        return {row[0] for row in cur.fetchall()}


def test_runs_keep_secondary_indexes_only_where_they_are_read(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Migration 11 drops them on DuckDB (it scans with zone maps), PostgreSQL reads through them.
    with store_at_version(db_url, 10, monkeypatch) as old:
        assert _runs_indexes(old) == {"runs_batch", "runs_pipeline"}
        w = Writer(old, clock=FixedClock())
        w.start()
        try:
            w.submit([run(pipeline="a"), run(pipeline="b", status="FAILED")]).result()
        finally:
            w.stop()
    store = open_store(db_url)
    try:
        assert store.migrate() == schema_mod.LATEST
        expected = set() if store.backend == "duckdb" else {"runs_batch", "runs_pipeline"}
        assert _runs_indexes(store) == expected
        batch = store.get_batch("default", "b1")
        assert (batch.total, batch.failed) == (2, 1)
    finally:
        store.close()


def test_a_run_round_trips_every_field(store: Store, writer: Writer) -> None:
    report = run(
        rows_invalid=3,
        custom_stats={"scd2_new": 7, "scd2_changed": 2, "sku_count": 1234, "nested": {"a": [1]}},
        labels={"team": "sales", "retailer": "acme"},
        error_message="nothing wrong",
    )
    writer.submit([report]).result()
    got = store.get_run(report["run_id"])
    assert got.pipeline == "load_sales"
    assert got.batch_id == "b1"
    assert got.started_at == T0
    assert got.started_at is not None and got.started_at.utcoffset() == timedelta(0)
    assert got.ended_at == T0 + timedelta(minutes=10)
    assert got.duration_s == 600.0
    assert got.read_throughput == pytest.approx(1000 / 600)
    assert got.write_throughput == pytest.approx(990 / 600)
    assert (got.rows_inserted, got.rows_updated, got.dq_errors) == (7, 2, 3)
    assert got.custom_stats == report["custom_stats"]
    assert got.labels == {"team": "sales", "retailer": "acme"}
    assert got.derived == frozenset(
        {
            "duration_s",
            "read_throughput",
            "write_throughput",
            "rows_inserted",
            "rows_updated",
            "dq_errors",
        }
    )


def test_unknown_ids_raise_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match="run 'nope' not found"):
        store.get_run("nope")
    with pytest.raises(NotFound, match="batch 'nope' not found"):
        store.get_batch("default", "nope")
    assert store.find_batches("nope") == []


def test_status_never_moves_backwards(store: Store, writer: Writer, clock: FixedClock) -> None:
    writer.submit([run(status="SUCCESS")]).result()
    clock.now += timedelta(seconds=1)
    late = run(status="RUNNING", ended_at=None, rows_read=5, error_message="late")
    writer.submit([late]).result()
    got = store.get_run("b1:load_sales")
    assert got.status == "SUCCESS"
    assert got.rows_read == 1000  # a backwards report only fills empty fields…
    assert got.error_message == "late"  # …which this one was


def test_updates_fill_in_and_rederive(store: Store, writer: Writer) -> None:
    writer.submit([run(status="RUNNING", ended_at=None, rows_written=None)]).result()
    assert store.get_run("b1:load_sales").duration_s is None
    writer.submit(
        [
            {
                "run_id": "b1:load_sales",
                "status": "SUCCESS",
                "ended_at": T0 + timedelta(minutes=5),
                "rows_written": 500,
            }
        ]
    ).result()
    got = store.get_run("b1:load_sales")
    assert (got.status, got.duration_s, got.rows_written, got.pipeline) == (
        "SUCCESS",
        300.0,
        500,
        "load_sales",
    )
    # A correction of the end time recomputes what was derived from it.
    writer.submit([{"run_id": "b1:load_sales", "ended_at": T0 + timedelta(minutes=10)}]).result()
    got = store.get_run("b1:load_sales")
    assert got.duration_s == 600.0
    assert got.write_throughput == pytest.approx(500 / 600)


def test_batch_aggregates(store: Store, writer: Writer) -> None:
    writer.submit(
        [
            run("a", rows_read=1000, rows_invalid=20),  # 2 % DQ errors: a warning
            run("b", status="FAILED", custom_stats={"scd2_new": 4, "scd2_changed": 6}),
            run("c", status="RUNNING", ended_at=None),
            run("d", status="PENDING", started_at=None, ended_at=None),
        ]
    ).result()
    batch = store.get_batch("default", "b1")
    assert (batch.total, batch.succeeded, batch.failed, batch.running, batch.pending) == (
        4,
        1,
        1,
        1,
        1,
    )
    assert batch.rows_read == 4000
    assert batch.rows_inserted == 4 and batch.rows_updated == 6
    assert batch.dq_errors == 20 and batch.dq_warning_processes == 1
    assert batch.started_at == T0 and batch.open
    assert batch.env == "prod"


def test_a_run_moving_batch_updates_both(store: Store, writer: Writer) -> None:
    writer.submit([run("a"), run("b")]).result()
    writer.submit([{"run_id": "b1:b", "batch_id": "b2", "pipeline": "b"}]).result()
    assert store.get_batch("default", "b1").total == 1
    assert store.get_batch("default", "b2").total == 1
    writer.submit([{"run_id": "b1:a", "batch_id": "b2"}]).result()
    with pytest.raises(NotFound):
        store.get_batch("default", "b1")
    assert store.get_batch("default", "b2").total == 2


def test_list_batches_filters_and_order(store: Store, writer: Writer) -> None:
    reports = []
    for day in range(10):
        start = T0 - timedelta(days=day)
        for env in ("prod", "dev"):
            reports.append(
                run(
                    "p",
                    batch_id=f"{env}-{day}",
                    env=env,
                    started_at=start,
                    ended_at=start + timedelta(hours=1),
                )
            )
    reports.append(run("p", batch_id="other", project="acme", env="qa", started_at=T0))
    writer.submit(reports).result()

    prod = store.list_batches(BatchQuery(since=T0 - timedelta(days=3, hours=1), env="prod"))
    assert [b.batch_id for b in prod] == ["prod-0", "prod-1", "prod-2", "prod-3"]
    window = store.list_batches(
        BatchQuery(since=T0 - timedelta(days=5), until=T0 - timedelta(days=1), env="dev")
    )
    assert [b.batch_id for b in window] == ["dev-2", "dev-3", "dev-4", "dev-5"]
    assert [b.batch_id for b in store.list_batches(BatchQuery(since=T0, project="acme"))] == [
        "other"
    ]
    assert len(store.list_batches(BatchQuery(since=T0 - timedelta(days=30), limit=5))) == 5


def test_find_batches_across_projects(store: Store, writer: Writer) -> None:
    writer.submit([run("p", project="x", run_id="1"), run("p", project="y", run_id="2")]).result()
    assert [b.project for b in store.find_batches("b1")] == ["x", "y"]


@pytest.mark.parametrize(
    ("sort", "order", "expected"),
    [
        ("pipeline", "asc", ["a", "b", "c", "d"]),
        ("pipeline", "desc", ["d", "c", "b", "a"]),
        ("duration_s", "desc", ["c", "a", "b", "d"]),  # d is running: no duration, last
        ("duration_s", "asc", ["b", "a", "c", "d"]),
        ("rows_read", "desc", ["b", "c", "a", "d"]),
        ("status", "asc", ["c", "d", "a", "b"]),
        ("dq_error_rate", "desc", ["a", "b", "c", "d"]),
    ],
)
def test_batch_runs_sort(
    store: Store, writer: Writer, sort: str, order: str, expected: list[str]
) -> None:
    writer.submit(
        [
            run("a", rows_read=100, rows_invalid=10, ended_at=T0 + timedelta(minutes=10)),
            run("b", rows_read=900, rows_invalid=9, ended_at=T0 + timedelta(minutes=5)),
            run("c", status="FAILED", rows_read=500, ended_at=T0 + timedelta(minutes=20)),
            run("d", status="RUNNING", rows_read=None, ended_at=None),
        ]
    ).result()
    query = RunQuery("default", "b1", sort=sort, order=order)  # type: ignore[arg-type]
    total, runs = store.list_batch_runs(query)
    assert total == 4
    assert [r.pipeline for r in runs] == expected


def test_batch_runs_paging_and_status_filter(store: Store, writer: Writer) -> None:
    writer.submit(
        [run(f"p{i:03d}", status="FAILED" if i % 10 == 0 else "SUCCESS") for i in range(120)]
    ).result()
    total, page = store.list_batch_runs(RunQuery("default", "b1", limit=50, offset=100))
    assert total == 120 and [r.pipeline for r in page] == [f"p{i:03d}" for i in range(100, 120)]
    total, failed = store.list_batch_runs(RunQuery("default", "b1", statuses=["FAILED"]))
    assert total == 12 and {r.status for r in failed} == {"FAILED"}
    total, everything = store.list_batch_runs(RunQuery("default", "b1", limit=None))
    assert total == len(everything) == 120


def test_pipelines_last_success_and_failure_streak(store: Store, writer: Writer) -> None:
    day = timedelta(days=1)
    statuses = ["SUCCESS", "FAILED", "SUCCESS", "FAILED", "FAILED"]
    writer.submit(
        [
            run(
                "etl",
                batch_id=f"d{i}",
                status=s,
                started_at=T0 + i * day,
                ended_at=T0 + i * day + timedelta(minutes=10),
            )
            for i, s in enumerate(statuses)
        ]
        + [run("etl", batch_id="dev", env="dev"), run("never", status="FAILED")]
    ).result()
    rows = {(p.pipeline, p.env): p for p in store.list_pipelines()}
    etl = rows[("etl", "prod")]
    assert etl.runs == 5
    assert etl.last_run_id == "d4:etl" and etl.last_status == "FAILED"
    assert etl.last_success_at == T0 + 2 * day + timedelta(minutes=10)
    assert etl.consecutive_failures == 2
    assert rows[("etl", "dev")].consecutive_failures == 0
    never = rows[("never", "prod")]
    assert never.last_success_at is None and never.consecutive_failures == 1
    assert [p.env for p in store.list_pipelines(env="dev")] == ["dev"]


def test_pipeline_history_newest_first(store: Store, writer: Writer) -> None:
    writer.submit(
        [
            run(
                "etl",
                batch_id=f"d{i}",
                started_at=T0 + timedelta(days=i),
                ended_at=T0 + timedelta(days=i, minutes=1),
            )
            for i in range(5)
        ]
    ).result()
    history = store.list_pipeline_runs("default", "etl", "prod", limit=3)
    assert [r.batch_id for r in history] == ["d4", "d3", "d2"]


def test_runs_by_id_in_one_read(store: Store, writer: Writer) -> None:
    writer.submit([run("a"), run("b", error_message="boom", status="FAILED")]).result()
    found = store.get_runs(["b1:b", "nope", "b1:a"])
    assert set(found) == {"b1:a", "b1:b"}
    assert found["b1:b"] == store.get_run("b1:b")
    assert found["b1:b"].error_message == "boom"
    assert store.get_runs([]) == {}


def test_recent_runs_of_every_pipeline_in_one_read(store: Store, writer: Writer) -> None:
    def at(pipeline: str, day: int, env: str = "prod", **fields: Any) -> dict[str, Any]:
        return run(
            pipeline,
            batch_id=f"d{day}",
            env=env,
            started_at=T0 + timedelta(days=day),
            ended_at=T0 + timedelta(days=day, minutes=1),
            **fields,
        )

    reports = [at("etl", day) for day in range(6)] + [
        at("etl", d, "dev", run_id=f"dev{d}") for d in (1, 5)
    ]
    reports += [at("old", 0), at("other", 4, project="x")]
    # Two runs that sort at the same time: the larger run_id counts as the newer.
    reports += [at("tie", 5, run_id="tie-a"), at("tie", 5, run_id="tie-b")]
    writer.submit(reports).result()
    since = T0 + timedelta(days=2)
    found = store.list_recent_runs(since, 3)
    assert set(found) == {
        ("default", "etl", "prod"),
        ("default", "etl", "dev"),
        ("default", "tie", "prod"),
        ("x", "other", "prod"),
    }
    assert [r.batch_id for r in found[("default", "etl", "prod")]] == ["d5", "d4", "d3"]
    assert [r.batch_id for r in found[("default", "etl", "dev")]] == ["d5"]
    assert [r.run_id for r in found[("default", "tie", "prod")]] == ["tie-b", "tie-a"]
    # The same runs as reading each pipeline on its own.
    assert found[("default", "etl", "prod")] == store.list_pipeline_runs(
        "default", "etl", "prod", 3
    )
    assert set(store.list_recent_runs(since, 3, project="x")) == {("x", "other", "prod")}
    assert set(store.list_recent_runs(since, 1, env="dev")) == {("default", "etl", "dev")}
    assert store.list_recent_runs(T0 + timedelta(days=9), 3) == {}


def test_a_failing_plan_writes_nothing(store: Store) -> None:
    def plan(existing: dict[str, RunRecord]) -> WritePlan:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.upsert_runs(["x"], plan)
    assert store.count_runs() == 0


def test_a_bad_request_fails_alone_in_a_group(store: Store, writer: Writer) -> None:
    good = writer.submit([run("a")])
    bad = writer.submit([run("b"), {"run_id": "unknown-run", "status": "SUCCESS"}])
    assert good.result() == ["b1:a"]
    with pytest.raises(InvalidInput, match=r"runs\[1\]\.pipeline: is required for a new run"):
        bad.result()
    assert store.count_runs() == 1
    with pytest.raises(NotFound):
        store.get_run("b1:b")


def test_the_same_run_twice_in_one_request_merges_in_order(store: Store, writer: Writer) -> None:
    writer.submit([run("a", status="RUNNING", ended_at=None), run("a", status="SUCCESS")]).result()
    assert store.get_run("b1:a").status == "SUCCESS"
    assert store.get_batch("default", "b1").total == 1


def test_a_cancelled_request_is_dropped_and_the_writer_goes_on(store: Store) -> None:
    writer = Writer(store)
    writer._thread = object()  # type: ignore[assignment]  # accept submissions, not yet run
    cancelled = writer.submit([run("gone")])
    kept = writer.submit([run("kept")])
    assert cancelled.cancel()
    writer._thread = None
    writer.start()
    try:
        assert kept.result(timeout=10) == ["b1:kept"]
        assert writer.submit([run("after")]).result(timeout=10) == ["b1:after"]
    finally:
        writer.stop()
    assert store.count_runs() == 2


def test_pipeline_state_recounts_when_history_is_rewritten(store: Store, writer: Writer) -> None:
    day = timedelta(days=1)
    writer.submit(
        [
            run(
                "etl",
                batch_id=f"d{i}",
                status=s,
                started_at=T0 + i * day,
                ended_at=T0 + i * day + timedelta(minutes=1),
            )
            for i, s in enumerate(["FAILED", "SUCCESS", "FAILED"])
        ]
    ).result()
    (etl,) = store.list_pipelines()
    assert (etl.consecutive_failures, etl.last_success_run_id) == (1, "d1:etl")
    # The success is withdrawn (a rerun failed): only a recount can tell the new streak.
    writer.submit([{"run_id": "d1:etl", "status": "FAILED"}]).result()
    (etl,) = store.list_pipelines()
    assert (etl.consecutive_failures, etl.last_success_at, etl.runs) == (3, None, 3)
    # A late success from before any of them changes nothing of the streak.
    writer.submit([run("etl", batch_id="old", started_at=T0 - day, ended_at=T0 - day)]).result()
    (etl,) = store.list_pipelines()
    assert (etl.consecutive_failures, etl.runs, etl.last_run_id) == (3, 4, "d2:etl")
    # Every run moves to dev: the prod pipeline disappears, dev has them all.
    writer.submit(
        [{"run_id": i, "env": "dev"} for i in ("d0:etl", "d1:etl", "d2:etl", "old:etl")]
    ).result()
    (dev,) = store.list_pipelines()
    assert (dev.env, dev.runs, dev.consecutive_failures) == ("dev", 4, 3)


def test_a_success_reported_after_a_later_failure(store: Store, writer: Writer) -> None:
    # Runs report when they end: the later run's failure is stored before the earlier
    # run's success, and only the stored failures can tell the streak.
    writer.submit(
        [run("etl", batch_id="late", status="FAILED", started_at=T0 + timedelta(minutes=10))]
    ).result()
    writer.submit([run("etl", batch_id="early", started_at=T0)]).result()
    (etl,) = store.list_pipelines()
    assert (etl.last_run_id, etl.last_success_run_id, etl.consecutive_failures) == (
        "late:etl",
        "early:etl",
        1,
    )


def test_stored_numbers_equal_a_count_after_many_small_commits(
    store: Store, writer: Writer, clock: FixedClock
) -> None:
    """Small commits bring batches and pipelines up to date from their changes (and, on
    DuckDB, from what the writer remembers): the result must equal counting every run."""
    rng = random.Random(20261123)
    ids = [f"r{i}" for i in range(10)]
    for number in range(60):
        clock.now = T0 + timedelta(days=1, minutes=number)
        reports: list[dict[str, Any]] = []
        for _ in range(rng.randint(1, 4)):
            report: dict[str, Any] = {"run_id": rng.choice(ids), "pipeline": rng.choice("pq")}
            for name, values in (
                ("batch_id", ["b1", "b1", "b2", "b3"]),
                ("env", ["prod", "prod", "prod", "dev"]),
                ("status", ["RUNNING", "SUCCESS", "FAILED", "PENDING"]),
                ("started_at", [T0 + timedelta(minutes=m) for m in (0, 5, 10)]),
                ("ended_at", [T0 + timedelta(minutes=m) for m in (20, 30)]),
                ("rows_read", [0, 100, 5000]),
                ("rows_invalid", [0, 2, 80]),
            ):
                if rng.random() < 0.5:
                    report[name] = rng.choice(values)
            reports.append(report)
        with contextlib.suppress(InvalidInput):
            writer.submit(reports).result()
    runs = []
    for run_id in ids:
        with contextlib.suppress(NotFound):
            runs.append(store.get_run(run_id))
    keys = {(r.project, r.batch_id) for r in runs}
    stored = store.list_batches(BatchQuery(since=T0 - timedelta(days=30)))
    assert {b.key for b in stored} == keys
    for row in stored:
        expected = count(row.key, runs, row.updated_at)
        assert row == expected
    for state in store.list_pipelines():
        assert state == recount(state.key, runs)


def test_a_report_that_changes_nothing_is_not_written_again(
    store: Store, writer: Writer, clock: FixedClock
) -> None:
    writer.submit([run("load", rows_read=10)]).result()
    first = store.get_run("b1:load")
    clock.now += timedelta(hours=1)
    assert writer.submit([run("load", rows_read=10)]).result() == ["b1:load"]
    assert store.get_run("b1:load") == first  # updated_at too
    assert writer.stats.runs_written == 1
    writer.submit([run("load", rows_read=11)]).result()
    assert store.get_run("b1:load").updated_at == clock.now
    assert writer.stats.runs_written == 2
