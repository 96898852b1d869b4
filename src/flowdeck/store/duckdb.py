"""The embedded default: one DuckDB file, no server to run.

One process owns the file. Reads use a cursor per thread; writes use the writer's own
cursor, and bulk rows arrive as Arrow tables (DuckDB appends those far faster than rows).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final

import duckdb
import pyarrow as pa

from flowdeck.errors import FlowdeckError, StoreUnavailable
from flowdeck.pipelines import PipelineKey, PipelineState
from flowdeck.runs import RunRecord
from flowdeck.store.base import BatchKey, BatchRow
from flowdeck.store.bulk import INCOMING, ColumnarAppend
from flowdeck.store.cache import Recent, WriteCache
from flowdeck.store.sql import (
    BATCH_COLUMNS,
    PIPELINE_COLUMNS,
    RUN_COLUMNS,
    Cursor,
    record_from_row,
)

log = logging.getLogger("flowdeck.store")

# How much write-ahead log DuckDB gathers before it checkpoints (compresses the new rows into
# the file and writes the indexes). Its default, 16 MB, is about 37,000 runs: every
# checkpoint rewrites the partly filled row group again and the whole run_id index, so as the
# store grows they cost more, until appending a million runs in 10,000-run commits took 83 ms
# per 10,000 instead of 40 (bench/ingest_bulk.py). The price of a larger log: up to about
# this much more memory until the checkpoint, and about a second to replay it after a crash.
CHECKPOINT_THRESHOLD: Final = "256MB"
_TS = pa.timestamp("us", tz="UTC")
_RUN_SCHEMA = pa.schema(
    [
        (
            name,
            _TS
            if name.endswith("_at")
            else pa.float64()
            if name in ("duration_s", "read_throughput", "write_throughput")
            else pa.int64()
            if name.startswith("rows_") or name == "dq_errors"
            else pa.string(),
        )
        for name in RUN_COLUMNS
    ]
)


_PIPELINE_SCHEMA = pa.schema(
    [
        (
            name,
            _TS
            if name.endswith(("_at", "_t"))
            else pa.int64()
            if name in ("runs", "consecutive_failures")
            else pa.string(),
        )
        for name in PIPELINE_COLUMNS
    ]
)
_BATCH_SCHEMA = pa.schema(
    [
        (
            name,
            _TS
            if name.endswith("_at")
            else pa.string()
            if name in ("project", "batch_id", "env")
            else pa.int64(),
        )
        for name in BATCH_COLUMNS
    ]
)
_STAGED = (
    "staged_runs",
    "staged_keys",
    "staged_ids",
    "staged_pkeys",
    "staged_pipelines",
    "staged_batches",
    INCOMING,
)


# Up to this many rows a staged relation goes into the statement that reads it, as one list
# parameter per column unnested in a WITH clause: registering an Arrow table and dropping it
# again costs about half a millisecond, a third of a small commit's statement.
INLINE_ROWS: Final = 256
_SQL_TYPES: Final = {
    _TS: "TIMESTAMPTZ",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    pa.string(): "VARCHAR",
}


def _texts(*names: str) -> pa.Schema:
    return pa.schema([(name, pa.string()) for name in names])


def _table(rows: list[tuple[Any, ...]], schema: pa.Schema) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    return pa.Table.from_arrays(
        [pa.array(col, type=field.type) for col, field in zip(columns, schema, strict=True)],
        schema=schema,
    )


_NAMED: Final = re.compile(r"\b(staged_[a-z]+)\b")
# Parsed statements the writer keeps, by query text: DuckDB's parser takes about half a
# millisecond for a statement of a thousand characters (the inline staging makes them that
# long), as much as running it on a small commit's rows. Binding and planning still happen
# at each execution, so a kept statement sees the schema as it is.
PARSED_STATEMENTS: Final = 256


def path_from_url(url: str) -> str:
    """``duckdb:///abs/path`` or ``duckdb://rel/path`` or ``duckdb://:memory:``."""
    rest = url.removeprefix("duckdb://")
    if not rest:
        raise StoreUnavailable("duckdb URL names no file: use duckdb:///path/to/file.duckdb")
    return rest


# The runs' times as microseconds: DuckDB's Python driver turns a TIMESTAMPTZ into a
# datetime through pytz, about fifteen times slower than these integers become one here
# (a batch's CSV export reads 10,000 runs, four times each).
_RUN_TIMES: Final = frozenset(c for c in RUN_COLUMNS if c.endswith("_at"))
# (sort_at is not a field of a run: it stays a number)
_RUN_TIME_AT: Final = tuple(
    i for i, c in enumerate(RUN_COLUMNS) if c in _RUN_TIMES and c != "sort_at"
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


_PIPELINE_TIMES: Final = frozenset(c for c in PIPELINE_COLUMNS if c.endswith(("_at", "_t")))
_PIPELINE_TIME_AT: Final = tuple(i for i, c in enumerate(PIPELINE_COLUMNS) if c in _PIPELINE_TIMES)


_BATCH_TIMES: Final = frozenset(c for c in BATCH_COLUMNS if c.endswith("_at"))
_BATCH_TIME_AT: Final = tuple(i for i, c in enumerate(BATCH_COLUMNS) if c in _BATCH_TIMES)


def _times(row: Sequence[Any], at: tuple[int, ...]) -> list[Any]:
    values = list(row)
    for i in at:
        if values[i] is not None:
            values[i] = _EPOCH + timedelta(microseconds=values[i])
    return values


class DuckDBStore(ColumnarAppend):
    backend = "duckdb"
    param_style = "duckdb"
    run_select = ", ".join(f"epoch_us({c})" if c in _RUN_TIMES else c for c in RUN_COLUMNS)
    pipeline_select = ", ".join(
        f"epoch_us({c})" if c in _PIPELINE_TIMES else c for c in PIPELINE_COLUMNS
    )
    batch_select = ", ".join(f"epoch_us({c})" if c in _BATCH_TIMES else c for c in BATCH_COLUMNS)
    types: ClassVar = {"text": "VARCHAR", "double": "DOUBLE", "json": "JSON"}
    driver_errors: ClassVar = (duckdb.Error,)
    conflict_errors: ClassVar = (duckdb.ConstraintException,)
    exclusive_writer = True  # one process owns the file
    keeps_back_pipelines = True

    def __init__(self, url: str) -> None:
        self.url = url
        path = path_from_url(url)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = duckdb.connect(path, config={"checkpoint_threshold": CHECKPOINT_THRESHOLD})
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open {path}: {exc}") from exc
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        # Reads under way, so that close() lets them finish: a cursor closed while another
        # thread runs a query on it fails that query with "connection is busy".
        self._reading = 0
        self._idle = threading.Condition(self._lock)
        self._closed = False
        self._writer = self._db.cursor()
        self._write_cache = WriteCache()
        # Relations staged inline in the write transaction under way: name -> (its WITH
        # clause, its parameters).
        self._inline: dict[str, tuple[str, dict[str, Any]]] = {}
        self._parsed: Recent[str, Any] = Recent(PARSED_STATEMENTS)
        self.side_reads = ThreadPoolExecutor(1, thread_name_prefix="flowdeck-append")

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._db.cursor()
            self._local.cursor = cur
            with self._lock:
                self._cursors.append(cur)
        return cur

    @contextmanager
    def reader(self) -> Iterator[Cursor]:
        with self._lock:
            if self._closed:
                raise StoreUnavailable("duckdb: the store is closed")
            self._reading += 1
        try:
            yield self._cursor()
        finally:
            with self._lock:
                self._reading -= 1
                if not self._reading:
                    self._idle.notify_all()

    @contextmanager
    def write_transaction(self) -> Iterator[Cursor]:
        cur = self._writer
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        finally:
            self._inline.clear()
            for name in _STAGED:
                cur.unregister(name)
        try:
            cur.execute("COMMIT")
        except duckdb.Error as exc:
            raise StoreUnavailable(f"duckdb commit failed: {exc}") from exc

    def stage_runs(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._stage(cur, "staged_runs", rows, _RUN_SCHEMA)

    def stage_pipeline_keys(self, cur: Cursor, keys: list[PipelineKey]) -> None:
        self._stage(cur, "staged_pkeys", keys, _texts("project", "pipeline", "env"))

    def stage_pipelines(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._stage(cur, "staged_pipelines", rows, _PIPELINE_SCHEMA)

    def stage_batches(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        self._stage(cur, "staged_batches", rows, _BATCH_SCHEMA)

    def stage_keys(self, cur: Cursor, keys: list[BatchKey]) -> None:
        self._stage(cur, "staged_keys", keys, _texts("project", "batch_id"))

    def stage_ids(self, cur: Cursor, ids: list[str]) -> None:
        self._stage(cur, "staged_ids", [(i,) for i in ids], _texts("run_id"))

    def _stage(
        self, cur: Cursor, name: str, rows: list[tuple[Any, ...]], schema: pa.Schema
    ) -> None:
        assert isinstance(cur, duckdb.DuckDBPyConnection)
        if cur is not self._writer or len(rows) > INLINE_ROWS:
            self._inline.pop(name, None)
            cur.register(name, _table(rows, schema))
            return
        cur.unregister(name)  # a table staged under this name earlier in the transaction
        columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        params: dict[str, Any] = {}
        unnested: list[str] = []
        for i, (field, values) in enumerate(zip(schema, columns, strict=True)):
            param = f"{name}_{i}"
            params[param] = list(values)
            unnested.append(f"unnest(CAST(:{param} AS {_SQL_TYPES[field.type]}[])) AS {field.name}")
        self._inline[name] = (f"{name} AS (SELECT {', '.join(unnested)})", params)

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        if cur is not self._writer:
            return super()._q(cur, query, params)
        if self._inline:
            query, params = self._with_inline(query, params)
        try:
            return cur.execute(self._statement(query), dict(params) if params else None)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"{self.backend}: {exc}") from exc

    def _with_inline(
        self, query: str, params: Mapping[str, Any] | None
    ) -> tuple[str, Mapping[str, Any] | None]:
        """``query`` with the relations it reads that are staged inline put in front as
        WITH clauses, and ``params`` with their values."""
        staged = [self._inline[n] for n in _NAMED.findall(query) if n in self._inline]
        if not staged:
            return query, params
        clauses = ", ".join(dict.fromkeys(clause for clause, _ in staged))
        head = query.lstrip()
        if head[:4].upper() == "WITH" and head[4:5].isspace():
            query = f"WITH {clauses}, {head[5:]}"
        else:
            query = f"WITH {clauses} {head}"
        merged = dict(params or {})
        for _, values in staged:
            merged.update(values)
        return query, merged

    def run_from_row(self, row: Sequence[Any]) -> RunRecord:
        return record_from_row(_times(row, _RUN_TIME_AT))

    def pipeline_from_row(self, row: Sequence[Any]) -> PipelineState:
        return PipelineState(*_times(row, _PIPELINE_TIME_AT))

    def read_batch(self, row: Sequence[Any]) -> BatchRow:
        return BatchRow(*_times(row, _BATCH_TIME_AT))

    def _close_cleanly(self) -> None:
        """Write the pipeline states kept back, which removes the mark that would have the
        next start count their pipelines again (deferred.py)."""
        if self._closed:
            return
        try:
            self.flush_pipelines()
        except FlowdeckError as exc:
            log.warning("closing %s: pipeline states left for the next start: %s", self.url, exc)

    def _statement(self, query: str) -> Any:
        """The writer's query parsed once (the text itself where it holds several
        statements, which the driver runs one by one)."""
        parsed = self._parsed.get(query)
        if parsed is None:
            statements = self._writer.extract_statements(self.sql(query))
            parsed = statements[0] if len(statements) == 1 else self.sql(query)
            self._parsed.put(query, parsed)
        return parsed

    def close(self, wait: float = 10.0) -> None:
        """Write the pipeline states kept back and close once the reads under way have
        finished (at most ``wait`` seconds)."""
        self.side_reads.shutdown(wait=True)
        self._close_cleanly()
        with self._lock:
            self._closed = True
            self._idle.wait_for(lambda: not self._reading, timeout=wait)
            for cur in self._cursors:
                cur.close()
            self._cursors.clear()
        self._writer.close()
        self._db.close()
