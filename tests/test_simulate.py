"""The demo estate: a deterministic history that tells its stories, a live batch that moves,
and both going through the real writer into a store, as ``flowdeck demo`` does."""

from __future__ import annotations

import logging
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from flowdeck.api.app import create_app
from flowdeck.batches import health
from flowdeck.ingest.writer import Writer
from flowdeck.models import Health, RunIn
from flowdeck.runs import RunRecord, merge
from flowdeck.settings import Settings
from flowdeck.simulate.companion import demo_companion, reset_demo_database
from flowdeck.simulate.estate import ENVS, LiveBatch, Report, build_estate, history
from flowdeck.store import BatchQuery, open_store

NOW = datetime(2026, 11, 23, 14, 5, 17, tzinfo=UTC)
SEED = 7
DAYS = 30
# RunIn is a pydantic model or a TypedDict depending on the version; an adapter takes both.
RUN_IN: TypeAdapter[RunIn] = TypeAdapter(RunIn)


@cache
def seeded(seed: int = SEED, days: int = DAYS) -> tuple[list[Report], ...]:
    """The history of NOW's day, computed once (tests only read it)."""
    return tuple(history(NOW, seed, days))


def all_reports(seed: int = SEED) -> list[Report]:
    return [r for batch in seeded(seed) for r in batch]


def prod_runs(pipeline: str) -> list[Report]:
    """A pipeline's prod runs, oldest first."""
    return [r for r in all_reports() if r["env"] == "prod" and r["pipeline"] == pipeline]


def dq_rate(report: Report) -> float:
    stats = report.get("custom_stats") or {}
    bad = report.get("rows_invalid") or stats.get("dq_failed_rows") or 0
    return float(bad) / report["rows_read"] if report["rows_read"] else 0.0


# -- history ---------------------------------------------------------------------------------
def test_same_seed_and_day_give_the_same_history() -> None:
    later_that_day = NOW.replace(hour=23, minute=59)
    assert list(history(later_that_day, SEED, DAYS)) == list(seeded())


def test_another_seed_gives_another_history_with_the_same_run_ids() -> None:
    other = all_reports(SEED + 1)
    assert other != all_reports()
    assert [r["run_id"] for r in other] == [r["run_id"] for r in all_reports()]


def test_run_ids_are_unique_and_name_batch_and_pipeline() -> None:
    reports = all_reports()
    assert len({r["run_id"] for r in reports}) == len(reports)
    for r in reports:
        assert r["run_id"] == f"{r['batch_id']}:{r['pipeline']}"
    assert reports[0]["batch_id"] == f"prod-{(NOW - timedelta(days=DAYS)):%Y%m%d}"


def test_every_report_is_a_valid_completed_run() -> None:
    for r in all_reports():
        RUN_IN.validate_python(r)
        assert r["status"] in ("SUCCESS", "FAILED")
        assert r["project"] == "default"
        started, ended = r["started_at"], r["ended_at"]
        assert started.utcoffset() == timedelta(0)
        assert ended.utcoffset() == timedelta(0)
        assert ended > started
        assert ended < NOW.replace(hour=0, minute=0, second=0)  # completed before today
        assert r["labels"]["schedule"] == "daily"
        assert r["labels"]["team"]
        assert r["rows_written"] <= r["rows_read"] or r["pipeline"].startswith("export")
        if r["status"] == "FAILED":
            assert r["error_message"]


def test_batches_per_env_and_their_shape() -> None:
    estate = build_estate(SEED)
    assert 38 <= len(estate.pipelines) <= 45
    assert len({p.name for p in estate.pipelines}) == len(estate.pipelines)
    counts = Counter(batch[0]["env"] for batch in seeded())
    assert counts == {"prod": DAYS, "test": DAYS, "dev": DAYS // 2}
    assert [e.name for e in ENVS] == ["prod", "test", "dev"]
    for batch in seeded():
        assert len(batch) == len(estate.pipelines)
        assert len({(r["batch_id"], r["env"]) for r in batch}) == 1
        span = max(r["ended_at"] for r in batch) - min(r["started_at"] for r in batch)
        assert timedelta(hours=1) <= span <= timedelta(hours=3), batch[0]["batch_id"]


def test_runs_wait_for_their_upstream() -> None:
    estate = build_estate(SEED)
    for batch in seeded():
        by_name = {r["pipeline"]: r for r in batch}
        for p in estate.pipelines:
            for upstream in p.upstream:
                assert by_name[p.name]["started_at"] >= by_name[upstream]["ended_at"]


def test_history_has_red_nights_dq_spikes_and_scd2_stats() -> None:
    reports = all_reports()
    failures = Counter(r["batch_id"] for r in reports if r["status"] == "FAILED")
    assert sum(failures.values()) > 0
    assert sum(1 for n in failures.values() if n >= 3) >= 3  # nights with several failures
    assert any(dq_rate(r) > 0.01 for r in reports)
    typical = [dq_rate(r) for r in reports if r["status"] == "SUCCESS"]
    assert statistics.median(typical) < 0.001  # spikes stand out from a quiet baseline
    stats = [r.get("custom_stats") or {} for r in reports]
    assert any(s.get("scd2_new", 0) > 0 and s.get("scd2_changed", 0) > 0 for s in stats)
    assert any("sku_count" in s for s in stats)
    assert any("promo_count" in s for s in stats)
    assert any("dq_failed_rows" in s for s in stats)


def test_one_prod_pipeline_failed_its_last_two_runs() -> None:
    estate = build_estate(SEED)
    broken = [
        p.name
        for p in estate.pipelines
        if [r["status"] for r in prod_runs(p.name)[-3:]] == ["SUCCESS", "FAILED", "FAILED"]
    ]
    assert broken


def test_one_retailer_feed_lost_volume_in_the_last_nights() -> None:
    shrunk = []
    for p in build_estate(SEED).pipelines:
        if p.kind != "feed":
            continue
        rows = [r["rows_read"] for r in prod_runs(p.name) if r["status"] == "SUCCESS"]
        usual = statistics.median(rows[:-2])
        if all(n < 0.65 * usual for n in rows[-2:]):
            shrunk.append(p.retailer)
    assert len(shrunk) == 1
    assert shrunk[0] is not None


def test_reports_merge_into_records_with_derived_fields() -> None:
    records: dict[str, RunRecord] = {}
    for r in all_reports():
        records[r["run_id"]] = merge(records.get(r["run_id"]), r, NOW)
    assert len(records) == len(all_reports())
    scd2 = [r for r in records.values() if r.pipeline.endswith("_scd2") and r.status == "SUCCESS"]
    assert scd2
    assert all(rec.rows_inserted == rec.custom_stats["scd2_new"] for rec in scd2)
    assert all(rec.rows_updated == rec.custom_stats["scd2_changed"] for rec in scd2)
    flagged = [rec for rec in records.values() if "dq_failed_rows" in rec.custom_stats]
    assert all(rec.dq_errors == rec.custom_stats["dq_failed_rows"] for rec in flagged)
    assert all(rec.duration_s and rec.duration_s > 0 for rec in records.values())


# -- the live batch --------------------------------------------------------------------------
def play(live: LiveBatch, start: datetime, every: timedelta, steps: int) -> list[list[Report]]:
    return [live.step(start + i * every) for i in range(steps)]


def test_live_batch_moves_runs_forward_then_starts_the_next() -> None:
    live = LiveBatch(SEED, NOW, speed=10)
    first_id = live.batch_id
    opening = live.step(NOW)
    assert len(opening) == len(live.estate.pipelines)
    assert all({"pipeline", "batch_id", "env"} <= r.keys() for r in opening)
    assert {r["batch_id"] for r in opening} == {first_id}
    assert Counter(r["status"] for r in opening)["PENDING"] > len(opening) // 2

    seen: dict[str, list[str]] = defaultdict(list)
    records: dict[str, RunRecord] = {}
    for r in opening:
        records[r["run_id"]] = merge(None, r, NOW)
        seen[r["run_id"]].append(records[r["run_id"]].status)
    now = NOW
    while live.batch_id == first_id:
        now += timedelta(seconds=2)
        for r in live.step(now):
            RUN_IN.validate_python(r)
            for key in ("started_at", "ended_at"):
                assert key not in r or r[key] <= now  # backdated, never in the future
            records[r["run_id"]] = merge(records.get(r["run_id"]), r, now)
            seen[r["run_id"]].append(records[r["run_id"]].status)
        if all(rec.status in ("SUCCESS", "FAILED") for rec in records.values()):
            break
    # 20–40 simulated minutes at 10× speed.
    assert timedelta(minutes=2) <= now - NOW <= timedelta(minutes=4, seconds=2)
    order = {"PENDING": 0, "RUNNING": 1, "SUCCESS": 2, "FAILED": 2}
    for statuses in seen.values():
        assert [order[s] for s in statuses] == sorted(order[s] for s in statuses)
        assert len(set(statuses)) == len(statuses)  # each step reports a change
    assert sum("RUNNING" in s for s in seen.values()) > len(seen) * 0.8
    for rec in records.values():
        assert rec.started_at is not None and rec.ended_at is not None
        assert rec.ended_at >= rec.started_at

    following = live.step(now + timedelta(seconds=2))
    assert live.batch_id != first_id
    assert live.batches == 2
    assert {r["batch_id"] for r in following} == {live.batch_id}
    assert len(following) == len(live.estate.pipelines)


def test_live_batch_is_deterministic() -> None:
    every = timedelta(seconds=7)
    a = play(LiveBatch(SEED, NOW, speed=25), NOW, every, 60)
    b = play(LiveBatch(SEED, NOW, speed=25), NOW, every, 60)
    assert a == b
    assert a != play(LiveBatch(SEED + 1, NOW, speed=25), NOW, every, 60)


def test_live_batch_at_real_time_speed_stays_in_the_past() -> None:
    live = LiveBatch(SEED, NOW, speed=1)
    for i, reports in enumerate(play(live, NOW, timedelta(minutes=1), 50)):
        now = NOW + timedelta(minutes=i)
        assert all(r.get("started_at", now) <= now for r in reports)
    with pytest.raises(ValueError, match="speed must be positive"):
        LiveBatch(SEED, NOW, speed=0)


# -- through the writer into a store ---------------------------------------------------------
def test_history_and_live_batches_in_a_store(tmp_path: Path) -> None:
    store = open_store(f"duckdb:///{tmp_path}/t.duckdb")
    store.migrate()
    writer = Writer(store)
    writer.start()
    try:
        started = time.perf_counter()
        writer.submit(all_reports()).result()  # one request, as the demo's seeding chunks are
        assert time.perf_counter() - started < 10  # ~0.2 s in practice: catches a collapse only
        assert store.count_runs() == len(all_reports())

        rows = store.list_batches(BatchQuery(since=NOW - timedelta(days=DAYS + 1), limit=1000))
        assert len(rows) == len(seeded())
        healths = Counter(health(b.total, b.succeeded, b.failed) for b in rows)
        assert healths[Health.GREEN] > 0
        assert healths[Health.RED] > 0
        assert any(b.dq_warning_processes > 0 for b in rows)
        assert any(b.rows_inserted > 0 and b.rows_updated > 0 for b in rows)
        pipelines = store.list_pipelines(project="default", env="prod")
        assert any(p.consecutive_failures == 2 for p in pipelines)

        # A batch in progress is yellow once 90 % of it succeeded and nothing failed.
        live = LiveBatch(SEED, NOW, speed=30)
        live_healths: set[Health] = set()
        now = NOW
        while Health.YELLOW not in live_healths and live.batches <= 10:
            writer.submit(live.step(now)).result()
            b = store.get_batch("default", live.batch_id)
            live_healths.add(health(b.total, b.succeeded, b.failed))
            now += timedelta(seconds=2)
        assert Health.YELLOW in live_healths
    finally:
        writer.stop()
        store.close()


def test_demo_companion_seeds_history_and_plays_a_live_batch(tmp_path: Path) -> None:
    real_start = datetime.now(UTC)

    def clock() -> datetime:
        return NOW + (datetime.now(UTC) - real_start)

    app = create_app(
        Settings(database_url=f"duckdb:///{tmp_path}/demo.duckdb"),
        clock=clock,
        companions=[demo_companion(seed=SEED, days=3, speed=10)],
    )
    with TestClient(app) as client:
        res = client.get("/api/v1/batches", params={"since": "7d", "limit": 100})
        assert res.status_code == 200
        history_ids = {b["batch_id"] for b in res.json()["items"]}
        assert {"prod-20261120", "prod-20261121", "prod-20261122"} <= history_ids
        deadline = time.monotonic() + 10
        live: list[dict[str, Any]] = []
        while not live and time.monotonic() < deadline:
            time.sleep(0.1)
            items = client.get("/api/v1/batches", params={"since": "1d"}).json()["items"]
            live = [b for b in items if b["batch_id"] not in history_ids]
        assert live, "the live batch never appeared"
        assert live[0]["env"] == "prod"
        assert live[0]["total"] == len(build_estate(SEED).pipelines)


def test_reset_demo_database_removes_the_file_and_its_wal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "demo.duckdb"
    db.write_bytes(b"x")
    (tmp_path / "demo.duckdb.wal").write_bytes(b"x")
    (tmp_path / "keep.duckdb").write_bytes(b"x")
    with caplog.at_level(logging.INFO, logger="flowdeck.demo"):
        reset_demo_database(db)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.duckdb"]
    assert len(caplog.records) == 2
    caplog.clear()
    reset_demo_database(db)  # nothing left to remove: not an error
    assert caplog.records == []
