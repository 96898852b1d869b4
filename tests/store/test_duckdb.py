"""What only the embedded backend needs: closing while other threads still read, and how
much log DuckDB gathers before a checkpoint."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from flowdeck.errors import StoreUnavailable
from flowdeck.ingest.writer import Writer
from flowdeck.runs import RunRecord
from flowdeck.store import open_store
from flowdeck.store.cache import NewRunGuess
from flowdeck.store.duckdb import DuckDBStore
from flowdeck.store.sql import record_from_row
from tests.conftest import T0, FixedClock, run

HOUR = timedelta(hours=1)


def test_close_lets_a_read_under_way_finish(tmp_path: Path) -> None:
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    store.migrate()
    inside = threading.Event()
    outcome: list[object] = []

    def read() -> None:
        try:
            with store.reader() as cur:  # type: ignore[attr-defined]
                inside.set()
                time.sleep(0.3)  # close() is called meanwhile
                cur.execute("SELECT count(*) FROM runs")
                outcome.append(cur.fetchall()[0][0])
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    assert inside.wait(5)
    store.close()
    thread.join()
    assert outcome == [0]
    with pytest.raises(StoreUnavailable, match="the store is closed"):
        store.count_runs()


def test_the_writer_remembers_each_failure_streak(tmp_path: Path) -> None:
    """A late success needs the failures since the last one: DuckDB's writer keeps them
    instead of counting the stored runs at every commit."""
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    store.migrate()
    writer = Writer(store, clock=FixedClock())
    writer.start()
    try:
        writer.submit([run("etl", batch_id="b1")]).result()
        for n in (1, 2):
            t = T0 + n * HOUR
            failed = run("etl", batch_id=f"b{n + 1}", status="FAILED", started_at=t, ended_at=t)
            writer.submit([failed]).result()
    finally:
        writer.stop()
    cache = store._write_cache  # type: ignore[attr-defined]
    assert cache.streaks.get(("default", "etl", "prod")) == {
        "b2:etl": T0 + HOUR,
        "b3:etl": T0 + 2 * HOUR,
    }
    store.close()


def stored(store: DuckDBStore) -> dict[str, RunRecord]:
    with store.reader() as cur:
        cur.execute("SELECT * FROM runs")
        return {row[0]: record_from_row(row) for row in cur.fetchall()}


def test_runs_the_writer_forgot_are_merged_as_if_it_had_looked_them_up(tmp_path: Path) -> None:
    """The writer takes run ids it does not remember for new ones and skips looking them
    up; one that is stored after all fails the commit's INSERT, which is rolled back and
    done again the careful way: the result is the same, with nothing written twice."""
    store = DuckDBStore(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    store.migrate()
    writer = Writer(store, clock=FixedClock())
    writer.start()
    cache = store._write_cache
    try:
        running = [run(f"p{i}", status="RUNNING", ended_at=None) for i in range(5)]
        writer.submit(running).result()
        assert cache.runs.get("b1:p0") is not None
        cache.runs.clear()  # as if they had been written long ago
        # Two of them finish, beside a new run: one commit, one wrong guess.
        done = [run("p0"), run("p1", status="FAILED"), run("p9")]
        writer.submit(done).result()
        assert cache.guess.wrong > 0
        # One remembered run and one new: two writes in one commit.
        writer.submit([run("p0", rows_read=5), run("p10", status="PENDING")]).result()
        # One remembered and one forgotten.
        writer.submit([run("p0", rows_read=6), run("p3", status="FAILED")]).result()
        # A re-post that changes nothing is still recognised once forgotten.
        cache.runs.clear()
        writer.submit([run("p0", rows_read=6)]).result()
    finally:
        writer.stop()
    runs = stored(store)
    assert len(runs) == 7
    assert (runs["b1:p0"].status, runs["b1:p0"].rows_read) == ("SUCCESS", 6)
    assert runs["b1:p1"].status == "FAILED"
    assert runs["b1:p2"].status == "RUNNING"
    assert runs["b1:p3"].status == "FAILED"
    assert runs["b1:p9"].status == "SUCCESS"
    assert runs["b1:p10"].status == "PENDING"
    # What the writer remembers is what is stored.
    for run_id, record in stored(store).items():
        remembered = cache.runs.get(run_id)
        assert remembered is None or remembered == record
    batch = store.get_batch("default", "b1")
    counts = (batch.total, batch.succeeded, batch.failed, batch.running, batch.pending)
    assert counts == (7, 2, 2, 2, 1)
    store.close()


def test_guessing_pauses_while_it_goes_wrong() -> None:
    guess = NewRunGuess()
    for _ in range(3):
        assert guess.take_turn()
        guess.outcome(right=False)
    assert not guess.take_turn()  # three wrong of about the last twenty: look runs up for a while
    for _ in range(NewRunGuess.PAUSE - 1):
        assert not guess.take_turn()
    assert guess.take_turn()
    for _ in range(100):
        guess.outcome(right=True)
        assert guess.take_turn()


def test_the_writer_parses_each_statement_once(tmp_path: Path) -> None:
    """Commits of the same shape reuse the writer's parsed statements, and what they write
    is the same as without them."""
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    assert isinstance(store, DuckDBStore)
    store.migrate()
    writer = Writer(store, clock=FixedClock())
    writer.start()
    try:
        for n in range(1, 3):  # the first commit of a pipeline and of a batch inserts them
            t = T0 + n * HOUR
            writer.submit(
                [run("etl", batch_id="b1", run_id=f"r{n}", started_at=t, ended_at=t)]
            ).result()
        parsed = len(store._parsed)
        for n in range(3, 6):
            t = T0 + n * HOUR
            writer.submit(
                [run("etl", batch_id="b1", run_id=f"r{n}", started_at=t, ended_at=t)]
            ).result()
    finally:
        writer.stop()
    assert parsed > 0
    assert len(store._parsed) == parsed  # nothing new to parse
    assert sorted(stored(store)) == ["r1", "r2", "r3", "r4", "r5"]
    assert store.get_batch("default", "b1").total == 5
    assert store.list_pipelines()[0].runs == 5
    store.close()


def test_a_parsed_statement_that_fails_still_names_the_backend(tmp_path: Path) -> None:
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    assert isinstance(store, DuckDBStore)
    store.migrate()
    for _ in range(2):  # parsed the first time, kept the second
        with pytest.raises(StoreUnavailable, match="duckdb"), store.write_transaction() as cur:
            store._q(cur, "SELECT no_such_column FROM runs")
    with pytest.raises(StoreUnavailable, match="duckdb"), store.write_transaction() as cur:
        store._q(cur, "SELEC 1")  # a parse error
    store.close()


def test_the_writer_runs_a_text_of_several_statements(tmp_path: Path) -> None:
    store = open_store(f"duckdb://{tmp_path / 'flowdeck.duckdb'}")
    assert isinstance(store, DuckDBStore)
    store.migrate()
    with store.write_transaction() as cur:
        store._q(cur, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2)")
    with store.reader() as cur:
        cur.execute("SELECT count(*) FROM t")
        assert cur.fetchall() == [(2,)]
    store.close()


def test_the_log_grows_past_duckdbs_default_before_a_checkpoint(tmp_path: Path) -> None:
    """A checkpoint rewrites the run_id index and the partly filled row group: the store lets
    the log reach CHECKPOINT_THRESHOLD (not DuckDB's 16 MB) first, and what the log holds is
    there again after a restart."""
    path = tmp_path / "flowdeck.duckdb"
    store = open_store(f"duckdb://{path}")
    store.migrate()
    assert isinstance(store, DuckDBStore)
    with store.write_transaction() as cur:
        # about 40 MB of log: 80,000 runs with 400 characters of custom_stats each
        cur.execute(
            """INSERT INTO runs (run_id, project, pipeline, batch_id, env, status,
                   custom_stats, labels, derived, created_at, updated_at, sort_at)
               SELECT 'r' || i, 'p', 'etl', 'b', 'prod', 'SUCCESS',
                   '{"note": "' || repeat('x', 400) || '"}', '{}', '', now(), now(), now()
               FROM range(80000) t(i)"""
        )
    wal = path.with_name(path.name + ".wal")
    assert wal.stat().st_size > 32 * 1024 * 1024
    # As after a crash: a copy of the file and its log, opened while the store still runs.
    assert _runs_in_a_copy(path) == 80_000
    store.close()


def _runs_in_a_copy(path: Path) -> int:
    """The runs a copy of the file and its log holds once opened (the log replayed)."""
    copy = path.with_name("copy.duckdb")
    shutil.copy(path, copy)
    shutil.copy(path.with_name(path.name + ".wal"), copy.with_name(copy.name + ".wal"))
    con = duckdb.connect(str(copy))
    try:
        return int(con.execute("SELECT count(*) FROM runs").fetchall()[0][0])
    finally:
        con.close()
