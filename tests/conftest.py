"""Shared fixtures: a throw-away PostgreSQL database per session, and a database URL per
test for each backend. In CI (CI=true) a missing PostgreSQL is a failure, not a skip."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from flowdeck.ingest.writer import Writer
from flowdeck.store import Store, open_store
from flowdeck.store import schema as schema_mod

PG_ADMIN_URL = os.environ.get(
    "FLOWDECK_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() == "true"
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)


def need(reason: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{reason} (required when CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A database of our own on the local server, dropped after the session."""
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        need(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
        raise
    name = f"flowdeck_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def reset_postgres(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each backend."""
    if request.param == "duckdb":
        return f"duckdb://{tmp_path / 'flowdeck.duckdb'}"
    url: str = request.getfixturevalue("pg_server_url")
    reset_postgres(url)
    return url


@contextmanager
def store_at_version(db_url: str, version: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """A store migrated only up to schema ``version`` (closed after the block)."""
    with monkeypatch.context() as patch:
        patch.setattr(schema_mod, "LATEST", version)
        old = open_store(db_url)
        assert old.migrate() == version
    try:
        yield old
    finally:
        old.close()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = open_store(db_url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, now: datetime = T0 + timedelta(days=1)) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def writer(store: Store, clock: FixedClock) -> Iterator[Writer]:
    w = Writer(store, clock=clock)
    w.start()
    try:
        yield w
    finally:
        w.stop()


def run(pipeline: str = "load_sales", batch_id: str | None = "b1", **fields: Any) -> dict[str, Any]:
    """A complete, successful run report; override any field."""
    report: dict[str, Any] = {
        "run_id": f"{batch_id}:{pipeline}",
        "pipeline": pipeline,
        "batch_id": batch_id,
        "env": "prod",
        "status": "SUCCESS",
        "started_at": T0,
        "ended_at": T0 + timedelta(minutes=10),
        "rows_read": 1000,
        "rows_written": 990,
    }
    report.update(fields)
    return {k: v for k, v in report.items() if v is not None}
