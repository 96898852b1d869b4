"""PostgreSQL, for several flowdeck replicas sharing one database.

Reads come from a connection pool; the writer has a connection of its own and serialises
with other replicas' writers through a transaction-scoped advisory lock. Bulk rows go in
with COPY into temporary tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
from psycopg_pool import ConnectionPool

from flowdeck.errors import StoreUnavailable
from flowdeck.pipelines import PipelineKey
from flowdeck.store.base import BatchKey
from flowdeck.store.sql import (
    BATCH_COLUMNS,
    PIPELINE_COLUMNS,
    PIPELINE_KEY,
    RUN_COLUMNS,
    Cursor,
    SqlStore,
)

_WRITE_LOCK = 0x666C6F77  # "flow": the advisory lock every replica's writer takes
_SCHEMA_LOCK = 0x64656B63  # "deck"


def conninfo_from_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url.removeprefix(prefix)
    return url


class PostgresStore(SqlStore):
    backend = "postgresql"
    param_style = "pyformat"
    types: ClassVar = {"text": "TEXT", "double": "DOUBLE PRECISION", "json": "JSONB"}
    driver_errors: ClassVar = (psycopg.Error,)

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        conninfo = conninfo_from_url(url)
        kwargs: dict[str, Any] = {"autocommit": True, "options": "-c timezone=UTC"}
        try:
            self._writer = psycopg.connect(conninfo, options="-c timezone=UTC")
            self._pool = ConnectionPool(
                conninfo, min_size=1, max_size=pool_size, kwargs=kwargs, open=True, timeout=10
            )
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        self._staging_ready = False
        # Staging tables filled in the current transaction (they empty at commit).
        self._staged: set[str] = set()

    @contextmanager
    def reader(self) -> Iterator[Cursor]:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    @contextmanager
    def write_transaction(self) -> Iterator[Cursor]:
        if self._writer.closed or self._writer.broken:
            self._writer = psycopg.connect(self._writer.info.dsn, options="-c timezone=UTC")
            self._staging_ready = False
        self._staged.clear()
        try:
            with self._writer.transaction(), self._writer.cursor() as cur:
                yield cur
        except psycopg.Error as exc:
            raise StoreUnavailable(f"postgresql: {exc}") from exc

    def lock_schema(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))

    def lock_writes(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))

    def _prepare_staging(self, cur: Cursor) -> None:
        if self._staging_ready:
            return
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_runs "
            "(LIKE runs INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_keys "
            "(project TEXT NOT NULL, batch_id TEXT NOT NULL) ON COMMIT DELETE ROWS"
        )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_ids (run_id TEXT NOT NULL) "
            "ON COMMIT DELETE ROWS"
        )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_pkeys (project TEXT NOT NULL, "
            "pipeline TEXT NOT NULL, env TEXT NOT NULL) ON COMMIT DELETE ROWS"
        )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_pipelines "
            "(LIKE pipelines INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cur.execute(
            "CREATE TEMP TABLE IF NOT EXISTS staged_batches "
            "(LIKE batches INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        self._staging_ready = True

    def _copy(
        self,
        cur: Cursor,
        table: str,
        columns: tuple[str, ...],
        rows: list[Any],
        analyze: bool = False,
    ) -> None:
        assert isinstance(cur, psycopg.Cursor)
        self._prepare_staging(cur)
        if table in self._staged:
            cur.execute(f"DELETE FROM {table}")  # staged twice in one transaction
        self._staged.add(table)
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if analyze:
            # Temporary tables have no statistics; without them the planner may join a few
            # keys to millions of runs by scanning them all instead of using the index.
            cur.execute(f"ANALYZE {table}")

    def stage_runs(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._copy(cur, "staged_runs", RUN_COLUMNS, rows)

    def stage_keys(self, cur: Cursor, keys: list[BatchKey]) -> None:
        self._copy(cur, "staged_keys", ("project", "batch_id"), keys, analyze=True)

    def stage_ids(self, cur: Cursor, ids: list[str]) -> None:
        self._copy(cur, "staged_ids", ("run_id",), [(i,) for i in ids], analyze=True)

    def stage_pipeline_keys(self, cur: Cursor, keys: list[PipelineKey]) -> None:
        self._copy(cur, "staged_pkeys", PIPELINE_KEY, keys, analyze=True)

    def stage_pipelines(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._copy(cur, "staged_pipelines", PIPELINE_COLUMNS, rows)

    def stage_batches(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._copy(cur, "staged_batches", BATCH_COLUMNS, rows)

    def close(self) -> None:
        self._pool.close()
        self._writer.close()
