"""What only the embedded backend needs: closing while other threads still read."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from flowdeck.errors import StoreUnavailable
from flowdeck.ingest.writer import Writer
from flowdeck.store import open_store
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
