"""What only the embedded backend needs: closing while other threads still read."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from flowdeck.errors import StoreUnavailable
from flowdeck.store import open_store


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
