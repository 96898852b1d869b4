"""Alerting's storage on both backends: the migration from version 1, writes beside the run
writer, and the one-evaluating-replica lock on PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from flowdeck.alerts.dispatch import Silence
from flowdeck.alerts.matchers import parse_matcher
from flowdeck.alerts.store import AlertStore
from flowdeck.ingest.writer import Writer
from flowdeck.store import open_store
from flowdeck.store import schema as schema_mod
from flowdeck.store.sql import SqlStore
from tests.conftest import T0, run, store_at_version


def test_a_version_1_database_is_migrated_to_2(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with store_at_version(db_url, 1, monkeypatch):
        pass
    store = open_store(db_url)
    try:
        assert store.schema_version() == 1
        assert store.migrate() == schema_mod.LATEST  # 2, and any version after it
        assert isinstance(store, SqlStore)
        alerts = AlertStore(store)
        assert alerts.alerts() == []
        assert alerts.silences() == []
        alerts.close()
    finally:
        store.close()


def test_alert_writes_run_beside_the_run_writer(db_url: str) -> None:
    """Alerting writes through its own connection (a second cursor on DuckDB) while the
    writer commits runs: neither waits for nor breaks the other."""
    store = open_store(db_url)
    store.migrate()
    assert isinstance(store, SqlStore)
    alerts = AlertStore(store)
    writer = Writer(store)
    writer.start()
    errors: list[BaseException] = []

    def silences() -> None:
        try:
            for i in range(60):
                alerts.add_silence(
                    Silence(
                        f"s{i}",
                        (parse_matcher("env=prod"),),
                        T0,
                        T0 + timedelta(hours=1),
                        "ana",
                        "load",
                        T0,
                    )
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=silences)
    thread.start()
    futures = [writer.submit([run(f"p{i}", f"b{i}")]) for i in range(60)]
    for f in futures:
        f.result(timeout=60)
    thread.join(60)
    writer.stop()
    try:
        assert errors == []
        assert store.count_runs() == 60
        assert len(alerts.silences()) == 60
    finally:
        alerts.close()
        store.close()


@pytest.mark.postgres
def test_only_one_replica_leads_on_postgres(pg_server_url: str) -> None:
    from tests.conftest import reset_postgres

    reset_postgres(pg_server_url)
    stores = [open_store(pg_server_url) for _ in range(2)]
    stores[0].migrate()
    first, second = (AlertStore(s) for s in stores if isinstance(s, SqlStore))
    try:
        assert first.try_lead()
        assert first.try_lead()  # still leading
        assert not second.try_lead()
        first.close()  # the leader goes away: its lock with it
        assert second.try_lead()
    finally:
        second.close()
        for s in stores:
            s.close()


def test_duckdb_always_leads(tmp_path: object) -> None:
    store = open_store(f"duckdb://{tmp_path}/one.duckdb")
    assert isinstance(store, SqlStore)
    alerts = AlertStore(store)
    assert alerts.try_lead()
    alerts.close()
    store.close()
