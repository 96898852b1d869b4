"""Pipeline states kept back from their table (store/deferred.py): read as if written, written
soon, and counted again from the runs after a crash."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from flowdeck.alerts.store import AlertStore
from flowdeck.ingest.writer import Writer
from flowdeck.pipelines import PipelineState, key_of, recount
from flowdeck.store import open_store
from flowdeck.store.duckdb import DuckDBStore
from flowdeck.store.sql import record_from_row
from tests.conftest import run
from tests.test_columnar import realistic, upsert

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "flowdeck.duckdb"


def opened(path: Path) -> DuckDBStore:
    store = open_store(f"duckdb://{path}")
    assert isinstance(store, DuckDBStore)
    store.migrate()  # (which recounts what a crash left)
    return store


@pytest.fixture
def store(path: Path) -> Iterator[DuckDBStore]:
    s = opened(path)
    yield s
    s.close()


def truth(store: DuckDBStore) -> list[PipelineState]:
    """Every pipeline's state counted from its stored runs (pipelines.recount)."""
    with store.reader() as cur:
        cur.execute("SELECT * FROM runs")
        runs = [record_from_row(row) for row in cur.fetchall()]
    states = [recount(key, runs) for key in {key_of(r) for r in runs}]
    return sorted((s for s in states if s is not None), key=lambda s: s.key)


def table(store: DuckDBStore) -> list[PipelineState]:
    """The pipelines table as it is on disk, kept-back states aside."""
    with store.reader() as cur:
        cur.execute(f"SELECT {store.pipeline_select} FROM pipelines ORDER BY 1, 2, 3")
        return [store.pipeline_from_row(row) for row in cur.fetchall()]


def two_rounds(store: DuckDBStore) -> None:
    """New pipelines (written at once), then more runs of them (their states kept back)."""
    upsert(store, realistic(40, prefix="a"), NOW)
    upsert(store, realistic(40, prefix="b", day=1), NOW + timedelta(minutes=5))


def test_kept_back_states_are_read_as_if_written(store: DuckDBStore) -> None:
    two_rounds(store)
    assert store.deferred is not None and len(store.deferred) > 0
    assert table(store) != truth(store)  # the second round's states are not on disk yet…
    # …yet every read of states sees them
    assert store.list_pipelines() == truth(store)
    assert [s for s in store.list_pipelines(env="dev")] == [
        s for s in truth(store) if s.env == "dev"
    ]
    alerts = AlertStore(store)
    assert sorted(alerts.pipeline_states(), key=lambda s: s.key) == truth(store)
    some = [s.key for s in truth(store)][:3]
    assert sorted(alerts.pipeline_states(some), key=lambda s: s.key) == truth(store)[:3]
    store.flush_pipelines()
    assert table(store) == truth(store)
    assert len(store.deferred) == 0


def test_the_writer_reads_kept_back_states_it_no_longer_remembers(store: DuckDBStore) -> None:
    two_rounds(store)
    store._write_cache.clear()  # as after a failed commit: states must come from the table
    upsert(store, realistic(40, prefix="c", day=2), NOW + timedelta(minutes=10))
    assert store.list_pipelines() == truth(store)
    store.flush_pipelines()
    assert table(store) == truth(store)


def test_kept_back_states_go_in_with_a_commit_once_due(store: DuckDBStore) -> None:
    assert store.deferred is not None
    store.deferred.flush_after = 0.0
    two_rounds(store)
    assert table(store) != truth(store)  # the second round's are kept back (none were due)
    upsert(store, realistic(40, prefix="c", day=2), NOW + timedelta(minutes=10))
    # the third commit found them due and wrote them with its own
    assert len(store.deferred) == 0
    assert table(store) == truth(store)


def test_an_idle_writer_writes_them_soon(store: DuckDBStore) -> None:
    writer = Writer(store)
    writer.start()
    try:
        writer.submit([run("p1", batch_id="b1")]).result()
        writer.submit([run("p1", batch_id="b2")]).result()
        deadline = time.monotonic() + 10
        while table(store) != truth(store) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert table(store) == truth(store)
        assert table(store)[0].runs == 2
    finally:
        writer.stop()


def with_states_kept_back(path: Path) -> tuple[DuckDBStore, list[PipelineState]]:
    """A store whose writer keeps states back, and every pipeline's true state."""
    store = opened(path)
    two_rounds(store)
    expected = truth(store)
    assert table(store) != expected
    return store, expected


def test_a_crash_leaves_them_to_be_counted_again_at_the_next_start(path: Path) -> None:
    store, expected = with_states_kept_back(path)
    # A crash: the process ends without writing them (the file keeps what was committed).
    store._writer.close()
    store._db.close()

    again = opened(path)
    try:
        assert table(again) == expected
        assert again.list_pipelines() == expected
    finally:
        again.close()


def test_a_pipeline_a_run_left_is_written_at_once(path: Path) -> None:
    """A crash's recount finds pipelines through the runs written since the mark, so the
    state of one that such a run left cannot wait."""
    store = opened(path)
    upsert(store, [run("a", batch_id="b1"), run("a", batch_id="b2")], NOW - timedelta(hours=2))
    moved = run("b", batch_id="b2") | {"run_id": "b2:a"}  # goes from "a" to "b"
    upsert(store, [moved], NOW)
    assert table(store) == truth(store)
    store._writer.close()  # a crash
    store._db.close()
    again = opened(path)
    try:
        assert table(again) == truth(again)
        assert [(s.pipeline, s.runs) for s in table(again)] == [("a", 1), ("b", 1)]
    finally:
        again.close()


def test_a_clean_close_writes_them_and_removes_the_mark(path: Path) -> None:
    store, expected = with_states_kept_back(path)
    store.close()
    with duckdb.connect(str(path)) as db:
        assert db.execute("SELECT count(*) FROM writer_marks").fetchall() == [(0,)]
        rows = db.execute(
            f"SELECT {store.pipeline_select} FROM pipelines ORDER BY 1, 2, 3"
        ).fetchall()
    assert [store.pipeline_from_row(r) for r in rows] == expected
