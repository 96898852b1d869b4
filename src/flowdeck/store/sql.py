"""The SQL both backends share. Queries are written once with ``:name`` parameters; a backend
translates the parameter style and supplies the few things that differ (types, staging of
bulk rows, connections) by overriding the small hooks at the bottom of :class:`SqlStore`."""

from __future__ import annotations

import abc
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ClassVar, Final, Protocol

import orjson

from flowdeck.errors import NotFound, StoreUnavailable
from flowdeck.pipelines import (
    Change,
    NeedsRecount,
    PipelineKey,
    PipelineState,
    Streak,
    advance,
    failures_in,
    key_of,
    next_streak,
    sort_time,
)
from flowdeck.runs import RunRecord
from flowdeck.store import schema
from flowdeck.store.base import (
    BatchKey,
    BatchQuery,
    BatchRow,
    RunQuery,
    Store,
    WritePlan,
)
from flowdeck.store.cache import LONGEST_STREAK, PipelineUpdate, WriteCache
from flowdeck.store.deferred import MARK, RECOVERY_MARGIN, DeferredPipelines, lay_over
from flowdeck.store.metrics_sql import MetricsSql
from flowdeck.store.tallies import STATUS_COUNT, SUMMED, NeedsRefresh, advance_batch
from flowdeck.store.tallies import Change as TallyChange

RUN_COLUMNS: Final = (
    "run_id",
    "project",
    "pipeline",
    "batch_id",
    "env",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "rows_read",
    "rows_written",
    "rows_invalid",
    "rows_inserted",
    "rows_updated",
    "dq_errors",
    "read_throughput",
    "write_throughput",
    "custom_stats",
    "labels",
    "error_message",
    "derived",
    "created_at",
    "updated_at",
    "sort_at",  # started_at, else created_at: the order of a pipeline's history
)
JSON_COLUMNS: Final = frozenset({"custom_stats", "labels"})
BATCH_COLUMNS: Final = tuple(BatchRow.__dataclass_fields__)
PIPELINE_COLUMNS: Final = tuple(PipelineState.__dataclass_fields__)
PIPELINE_KEY: Final = ("project", "pipeline", "env")

# Sort keys of the process list (the API's field names) and the SQL each sorts by.
RUN_SORTS: Final[Mapping[str, str]] = {
    **{c: c for c in RUN_COLUMNS if c not in JSON_COLUMNS | {"derived", "sort_at"}},
    "dq_error_rate": "CASE WHEN rows_read > 0 THEN dq_errors * 1.0 / rows_read END",
}

_RUN_SELECT: Final = ", ".join(RUN_COLUMNS)
_BATCH_SELECT: Final = ", ".join(BATCH_COLUMNS)

_UPSERT_RUNS: Final = f"""
INSERT INTO runs ({_RUN_SELECT})
SELECT {_RUN_SELECT} FROM staged_runs
ON CONFLICT (run_id) DO UPDATE SET
{", ".join(f"{c} = excluded.{c}" for c in RUN_COLUMNS if c != "run_id")}
"""

# (the run columns as the store reads them: ``SqlStore.run_select``)
_SELECT_STAGED_RUNS: Final = (
    "SELECT {select} FROM runs WHERE run_id IN (SELECT run_id FROM staged_ids)"
)
_SELECT_RUNS_ANY: Final = "SELECT {select} FROM runs WHERE run_id = ANY(:ids)"
# Up to this many ids are looked up as one list parameter rather than a staged relation.
FEW_IDS: Final = 256
_INSERT_RUNS: Final = f"INSERT INTO runs ({_RUN_SELECT}) SELECT {_RUN_SELECT} FROM staged_runs"


def batch_aggregates_sql(source: str, updated_at: str) -> str:
    """INSERT INTO batches the aggregates of the runs in ``source`` (a FROM clause naming
    the runs ``r``): the one definition of a batch's numbers."""
    return f"""
INSERT INTO batches ({_BATCH_SELECT})
SELECT r.project, r.batch_id, min(r.env), min(r.started_at),
       max(r.ended_at), coalesce(min(r.started_at), min(r.created_at)), count(*),
       {", ".join(f"count(*) FILTER (WHERE r.status = '{s}')" for s in STATUS_COUNT)},
       {", ".join(f"coalesce(sum(r.{c}), 0)" for c in SUMMED)},
       count(*) FILTER (WHERE r.dq_errors > 0.01 * coalesce(r.rows_read, 0)),
       {updated_at}
FROM {source}
GROUP BY r.project, r.batch_id
"""


_UPSERT_BATCH_TAIL: Final = "ON CONFLICT (project, batch_id) DO UPDATE SET\n" + ", ".join(
    f"{c} = excluded.{c}" for c in BATCH_COLUMNS if c not in ("project", "batch_id")
)
_REFRESH_BATCHES: Final = (
    batch_aggregates_sql(
        "runs r JOIN staged_keys k ON r.project = k.project AND r.batch_id = k.batch_id", ":now"
    )
    + _UPSERT_BATCH_TAIL
)
_REFRESH_ONE_BATCH: Final = (
    batch_aggregates_sql("runs r WHERE r.project = :p AND r.batch_id = :b", ":now")
    + _UPSERT_BATCH_TAIL
    + f"\nRETURNING {_BATCH_SELECT}"
)
_UPSERT_STAGED_BATCHES: Final = (
    f"INSERT INTO batches ({_BATCH_SELECT}) SELECT {_BATCH_SELECT} FROM staged_batches\n"
    + _UPSERT_BATCH_TAIL
)
_UPDATE_BATCH: Final = (
    "UPDATE batches SET "
    + ", ".join(f"{c} = :{c}" for c in BATCH_COLUMNS if c not in ("project", "batch_id"))
    + " WHERE project = :project AND batch_id = :batch_id"
)
_INSERT_BATCH: Final = (
    f"INSERT INTO batches ({_BATCH_SELECT}) VALUES ({', '.join(':' + c for c in BATCH_COLUMNS)})"
)
# Commits touching at most this many batches refresh them one by one (see upsert_runs).
FEW_BATCHES: Final = 4
# Up to this many runs per commit the writer brings batches up to date from the changes
# (tallies.py); above it, counting the batches' stored runs in SQL costs less per run.
DELTA_MAX_RUNS: Final = 512
_PRUNE_BATCHES: Final = """
DELETE FROM batches WHERE EXISTS (
    SELECT 1 FROM staged_keys k WHERE k.project = batches.project AND k.batch_id = batches.batch_id
) AND NOT EXISTS (
    SELECT 1 FROM runs r WHERE r.project = batches.project AND r.batch_id = batches.batch_id
)
"""
_SELECT_STAGED_BATCHES: Final = f"""
SELECT {", ".join(f"b.{c}" for c in BATCH_COLUMNS)} FROM batches b
JOIN staged_keys k ON b.project = k.project AND b.batch_id = k.batch_id
"""
# Each pipeline's newest runs among those that sort after a time (the alias lets
# ``run_select`` name the columns as it does on the table).
_RECENT_RUNS: Final = """
SELECT {select} FROM (
    SELECT *, row_number() OVER (
        PARTITION BY project, pipeline, env ORDER BY sort_at DESC, run_id DESC
    ) AS recent
    FROM runs WHERE {where}
) runs WHERE recent <= :limit
ORDER BY project, pipeline, env, recent
"""
_SAME_PIPELINE: Final = (
    "{a}.project = {b}.project AND {a}.pipeline = {b}.pipeline AND {a}.env = {b}.env"
)
# The definition of a pipeline's state (pipelines.recount, in SQL), for the pipelines the
# writer could not bring up to date incrementally.
_RECOUNT_PIPELINES: Final = f"""
WITH r AS (
    SELECT r.project, r.pipeline, r.env, r.run_id, r.status, r.ended_at, r.sort_at AS t
    FROM runs r JOIN staged_pkeys k ON {_SAME_PIPELINE.format(a="r", b="k")}
), ranked AS (
    SELECT r.*,
           row_number() OVER (PARTITION BY project, pipeline, env ORDER BY t DESC, run_id DESC)
               AS rn_all,
           row_number() OVER (
               PARTITION BY project, pipeline, env, status = 'SUCCESS'
               ORDER BY t DESC, run_id DESC
           ) AS rn_status
    FROM r
), l AS (SELECT * FROM ranked WHERE rn_all = 1),
w AS (SELECT * FROM ranked WHERE status = 'SUCCESS' AND rn_status = 1),
s AS (
    SELECT r.project, r.pipeline, r.env, count(*) AS runs,
           count(*) FILTER (WHERE r.status = 'FAILED' AND (w.t IS NULL OR r.t > w.t))
               AS failures
    FROM r LEFT JOIN w ON {_SAME_PIPELINE.format(a="w", b="r")}
    GROUP BY r.project, r.pipeline, r.env
)
SELECT s.project, s.pipeline, s.env, s.runs, l.run_id, l.t, l.status,
       w.run_id, w.t, coalesce(w.ended_at, w.t), s.failures
FROM s
JOIN l ON {_SAME_PIPELINE.format(a="l", b="s")}
LEFT JOIN w ON {_SAME_PIPELINE.format(a="w", b="s")}
"""
_SELECT_STAGED_PIPELINES: Final = f"""
SELECT {", ".join(f"p.{c}" for c in PIPELINE_COLUMNS)} FROM pipelines p
JOIN staged_pkeys k ON {_SAME_PIPELINE.format(a="p", b="k")}
"""
# Stored pipelines are updated, new ones inserted: two plain statements cost less than an
# upsert on DuckDB, and the second is only needed the first time a pipeline reports.
_UPDATE_PIPELINES: Final = f"""
UPDATE pipelines SET
{", ".join(f"{c} = s.{c}" for c in PIPELINE_COLUMNS if c not in PIPELINE_KEY)}
FROM staged_pipelines s WHERE {_SAME_PIPELINE.format(a="pipelines", b="s")}
"""
_INSERT_NEW_PIPELINES: Final = f"""
INSERT INTO pipelines ({", ".join(PIPELINE_COLUMNS)})
SELECT {", ".join(PIPELINE_COLUMNS)} FROM staged_pipelines s
WHERE NOT EXISTS (SELECT 1 FROM pipelines p WHERE {_SAME_PIPELINE.format(a="p", b="s")})
"""
_FAILURES_AFTER: Final = """
SELECT count(*) FROM runs WHERE project = :project AND pipeline = :pipeline AND env = :env
AND sort_at > :since AND status = 'FAILED'
"""
_SELECT_STREAKS: Final = f"""
SELECT r.project, r.pipeline, r.env, r.run_id, r.sort_at
FROM runs r JOIN staged_pkeys k ON {_SAME_PIPELINE.format(a="r", b="k")}
LEFT JOIN pipelines p ON {_SAME_PIPELINE.format(a="p", b="k")}
WHERE r.status = 'FAILED' AND (p.last_success_t IS NULL OR r.sort_at > p.last_success_t)
"""
# When the runs were written whose pipelines' states are kept back (store/deferred.py).
_SET_MARK: Final = (
    "INSERT INTO writer_marks (name, marked_at) VALUES (:name, :at) "
    "ON CONFLICT (name) DO UPDATE SET marked_at = excluded.marked_at"
)
_DROP_MARK: Final = "DELETE FROM writer_marks WHERE name = :name"
_GET_MARK: Final = "SELECT marked_at FROM writer_marks WHERE name = :name"
_RUNS_SINCE: Final = "SELECT DISTINCT project, pipeline, env FROM runs WHERE updated_at >= :since"
_DELETE_PIPELINE: Final = (
    "DELETE FROM pipelines WHERE project = :project AND pipeline = :pipeline AND env = :env"
)

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Cursor(Protocol):
    def execute(self, query: Any, params: Any = ..., /) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchone(self) -> Any: ...


def run_row(record: RunRecord) -> tuple[Any, ...]:
    """A record as a row of the ``runs`` table (JSON as text)."""
    return (
        record.run_id,
        record.project,
        record.pipeline,
        record.batch_id,
        record.env,
        record.status,
        record.started_at,
        record.ended_at,
        record.duration_s,
        record.rows_read,
        record.rows_written,
        record.rows_invalid,
        record.rows_inserted,
        record.rows_updated,
        record.dq_errors,
        record.read_throughput,
        record.write_throughput,
        orjson.dumps(record.custom_stats).decode(),
        orjson.dumps(record.labels).decode(),
        record.error_message,
        ",".join(sorted(record.derived)),
        record.created_at,
        record.updated_at,
        sort_time(record),
    )


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value if value is not None else {}


def record_from_row(row: Sequence[Any]) -> RunRecord:
    values = dict(zip(RUN_COLUMNS, row, strict=True))
    del values["sort_at"]
    values["custom_stats"] = _json(values["custom_stats"])
    values["labels"] = _json(values["labels"])
    derived = values["derived"]
    values["derived"] = frozenset(derived.split(",")) if derived else frozenset()
    return RunRecord(**values)


def batch_from_row(row: Sequence[Any]) -> BatchRow:
    return BatchRow(*row)


class _WrongGuess(Exception):
    """A run taken for new is stored already: the transaction was rolled back."""


class SqlStore(MetricsSql, Store):
    """The shared implementation. Subclasses provide connections and the hooks below."""

    param_style: ClassVar[str]  # "duckdb" ($name) or "pyformat" (%(name)s)
    # How runs are read (``run_from_row`` turns a row of it into a run): a backend whose
    # driver is slow at some type reads it otherwise.
    run_select: ClassVar[str] = _RUN_SELECT
    pipeline_select: ClassVar[str] = ", ".join(PIPELINE_COLUMNS)  # and pipeline_from_row
    batch_select: ClassVar[str] = _BATCH_SELECT  # and read_batch
    # True where this process's writer is the only one of its database: it may then keep
    # what it wrote in memory instead of reading it back (see cache.py).
    exclusive_writer: ClassVar[bool] = False
    _write_cache: WriteCache
    # Whether the writer keeps pipeline states back from their table (deferred.py): only an
    # exclusive writer may, once ``migrate`` has made the store ready for it.
    keeps_back_pipelines: ClassVar[bool] = False
    deferred: DeferredPipelines | None = None  # the states kept back
    types: ClassVar[Mapping[str, str]]  # {text}, {double}, {json} in schema.py

    def sql(self, query: str) -> str:
        """Translate ``:name`` parameters to the driver's style."""
        if self.param_style == "pyformat":
            return _PARAM.sub(r"%(\1)s", query.replace("%", "%%"))
        return _PARAM.sub(r"$\1", query)

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        try:
            if params:
                return cur.execute(self.sql(query), dict(params))
            return cur.execute(self.sql(query))
        except self.driver_errors as exc:
            raise StoreUnavailable(f"{self.backend}: {exc}") from exc

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> int:
        with self.write_transaction() as cur:
            self.lock_schema(cur)
            self._q(
                cur,
                "CREATE TABLE IF NOT EXISTS flowdeck_schema "
                "(version INTEGER NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
            )
            current = self._version(cur)
            if current > schema.LATEST:
                raise StoreUnavailable(
                    f"the database has schema version {current}, newer than this flowdeck "
                    f"({schema.LATEST}); upgrade flowdeck"
                )
            for version in range(current + 1, schema.LATEST + 1):
                for statement in schema.statements(version, self.backend):
                    self._q(cur, statement.format(**self.types))
                self._q(
                    cur,
                    "INSERT INTO flowdeck_schema (version, applied_at) VALUES (:v, now())",
                    {"v": version},
                )
            if self.keeps_back_pipelines and schema.LATEST >= schema.WRITER_MARKS:
                self._recover_pipelines(cur)
                self.deferred = DeferredPipelines()
        return schema.LATEST

    def _recover_pipelines(self, cur: Cursor) -> None:
        """Count again the pipelines of the runs written since states were kept back, when
        the last process ended without writing them (deferred.py)."""
        self._q(cur, _GET_MARK, {"name": MARK})
        marks = cur.fetchall()
        if not marks:
            return  # closed cleanly (or never kept any back)
        self._q(cur, _RUNS_SINCE, {"since": marks[0][0] - RECOVERY_MARGIN})
        keys: list[PipelineKey] = [tuple(row) for row in cur.fetchall()]
        if keys:
            self.stage_pipeline_keys(cur, keys)
            self._q(cur, _SELECT_STAGED_PIPELINES)
            stored = {PipelineState(*row).key for row in cur.fetchall()}
            self._q(cur, _RECOUNT_PIPELINES)
            states = [PipelineState(*row) for row in cur.fetchall()]
            self._write_pipelines(cur, states, stored)
        self._q(cur, _DROP_MARK, {"name": MARK})

    def _version(self, cur: Cursor) -> int:
        self._q(cur, "SELECT coalesce(max(version), 0) FROM flowdeck_schema")
        return int(cur.fetchall()[0][0])

    def schema_version(self) -> int:
        with self.reader() as cur:
            return self._version(cur)

    def ping(self) -> None:
        with self.reader() as cur:
            self._q(cur, "SELECT 1")
            cur.fetchall()

    # -- writes ------------------------------------------------------------------------
    def upsert_runs(
        self, run_ids: Collection[str], plan: Callable[[dict[str, RunRecord]], WritePlan]
    ) -> list[BatchRow]:
        cache = self._write_cache if self.exclusive_writer else None
        try:
            if cache is not None and cache.guess.take_turn():
                try:
                    return self._upsert_runs(run_ids, plan, cache, guess=True)
                except _WrongGuess:
                    cache.guess.outcome(right=False)  # rolled back: look them up instead
            return self._upsert_runs(run_ids, plan, cache, guess=False)
        except BaseException:
            if cache is not None:
                cache.clear()  # the transaction may or may not have landed
            raise

    def _upsert_runs(
        self,
        run_ids: Collection[str],
        plan: Callable[[dict[str, RunRecord]], WritePlan],
        cache: WriteCache | None,
        *,
        guess: bool = False,
    ) -> list[BatchRow]:
        """``guess``: take the ids the cache does not remember for new runs instead of
        looking them up; _WrongGuess (rolled back) when one of them is stored."""
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            existing: dict[str, RunRecord] = {}
            unknown = list(run_ids)
            if cache is not None:
                existing = {i: r for i in run_ids if (r := cache.runs.get(i)) is not None}
                unknown = [i for i in run_ids if i not in existing]
            guess = guess and bool(unknown)
            if unknown and not guess:
                existing.update(self._stored_runs(cur, unknown))
            todo = plan(existing)
            if not todo.records:
                return []
            new = [r for r in todo.records if r.run_id not in existing]
            if guess:
                # The runs taken for new go in on their own: one stored already fails
                # the INSERT instead of being overwritten by the upsert.
                self._insert_guessed(cur, new)
                self._write_runs(cur, [r for r in todo.records if r.run_id in existing], True)
            else:
                self._write_runs(cur, todo.records, len(new) < len(todo.records))
            changes = [(existing.get(r.run_id), r) for r in todo.records]
            pipelines = self._update_pipelines(cur, changes, cache)
            self._mark_kept(cur, pipelines, min(r.updated_at for r in todo.records))
            batches = self._update_batches(cur, changes, todo, cache)
        if self.deferred is not None:
            self.deferred.committed(
                pipelines.kept, flushed=pipelines.flushed, removed=pipelines.removed
            )
        if cache is not None:  # only what is committed
            if guess:
                cache.guess.outcome(right=True)
            cache.remember(pipelines, batches, todo.batch_keys if todo.moved else ())
            cache.remember_runs(existing.values(), todo.records)
        return batches

    def _stored_runs(self, cur: Cursor, run_ids: list[str]) -> dict[str, RunRecord]:
        if len(run_ids) <= FEW_IDS:
            self._q(cur, _SELECT_RUNS_ANY.format(select=self.run_select), {"ids": run_ids})
        else:
            self.stage_ids(cur, run_ids)
            self._q(cur, _SELECT_STAGED_RUNS.format(select=self.run_select))
        return {row[0]: self.run_from_row(row) for row in cur.fetchall()}

    def _write_runs(self, cur: Cursor, records: list[RunRecord], stored: bool) -> None:
        """Write ``records``; ``stored``: some of them are stored already (upsert)."""
        if records:
            self.stage_runs(cur, [run_row(r) for r in records])
            # With none stored there is no conflict to look for: cheaper on DuckDB.
            self._q(cur, _UPSERT_RUNS if stored else _INSERT_RUNS)

    def _insert_guessed(self, cur: Cursor, records: list[RunRecord]) -> None:
        try:
            self._write_runs(cur, records, False)
        except StoreUnavailable as exc:
            if isinstance(exc.__cause__, self.conflict_errors):
                raise _WrongGuess from None
            raise

    def _update_batches(
        self, cur: Cursor, changes: list[Change], todo: WritePlan, cache: WriteCache | None
    ) -> list[BatchRow]:
        """Bring the numbers of every batch the commit touched up to date: from the changes
        alone where that is exact (a small commit), by counting the stored runs again where
        it is not or where counting is cheaper per run (bulk)."""
        now = max(r.updated_at for r in todo.records)
        if todo.moved or len(changes) > DELTA_MAX_RUNS:
            return self._refresh_batches(cur, list(todo.batch_keys), todo.moved, now)
        mine: dict[BatchKey, list[TallyChange]] = {key: [] for key in todo.batch_keys}
        for before, after in changes:
            same = before is not None and (before.project, before.batch_id) == (
                after.project,
                after.batch_id,
            )
            mine.setdefault((after.project, after.batch_id), []).append(
                (before if same else None, after)
            )
        current = self._current_batches(cur, list(mine), cache)
        advanced: list[BatchRow] = []
        refresh: list[BatchKey] = []
        for key, tally in mine.items():
            try:
                advanced.append(advance_batch(key, current.get(key), tally, now))
            except NeedsRefresh:
                refresh.append(key)
        if len(advanced) <= FEW_BATCHES:
            # A statement per batch with its values as parameters: no staging, and an
            # UPDATE through the primary key costs a third of an upsert on DuckDB.
            for row in advanced:
                values = {c: getattr(row, c) for c in BATCH_COLUMNS}
                self._q(cur, _UPDATE_BATCH if row.key in current else _INSERT_BATCH, values)
        else:
            self.stage_batches(cur, [tuple(getattr(b, c) for c in BATCH_COLUMNS) for b in advanced])
            self._q(cur, _UPSERT_STAGED_BATCHES)
        if refresh:
            advanced.extend(self._refresh_batches(cur, refresh, False, now))
        return advanced

    def _current_batches(
        self, cur: Cursor, keys: list[BatchKey], cache: WriteCache | None
    ) -> dict[BatchKey, BatchRow]:
        found: dict[BatchKey, BatchRow] = {}
        missing = keys
        if cache is not None:
            found = {k: b for k in keys if (b := cache.batches.get(k)) is not None}
            missing = [k for k in keys if k not in found]
        if missing:
            self.stage_keys(cur, missing)
            self._q(cur, _SELECT_STAGED_BATCHES)
            found.update((b.key, b) for b in map(batch_from_row, cur.fetchall()))
        return found

    def _refresh_batches(
        self, cur: Cursor, keys: list[BatchKey], moved: bool, now: datetime
    ) -> list[BatchRow]:
        """Count the stored runs of these batches again (a batch left empty is removed)."""
        if len(keys) <= FEW_BATCHES and not moved:
            # Named one by one, each batch's runs come through the (project, batch_id)
            # index (a join to staged keys would make DuckDB scan every stored run), and
            # the refreshed row comes back with the same statement.
            refreshed: list[BatchRow] = []
            for project, batch_id in keys:
                params = {"p": project, "b": batch_id, "now": now}
                self._q(cur, _REFRESH_ONE_BATCH, params)
                refreshed.extend(batch_from_row(row) for row in cur.fetchall())
            return refreshed
        self.stage_keys(cur, keys)
        self._q(cur, _REFRESH_BATCHES, {"now": now})
        if moved:
            self._q(cur, _PRUNE_BATCHES)
        self._q(cur, _SELECT_STAGED_BATCHES)
        return [batch_from_row(row) for row in cur.fetchall()]

    def _update_pipelines(
        self, cur: Cursor, changes: list[Change], cache: WriteCache | None
    ) -> PipelineUpdate:
        """Bring the state of every pipeline these changes touch up to date: incrementally
        where that is exact, by a recount from the stored runs where it is not. Returns the
        new states and the pipelines left without runs (removed)."""
        touched: dict[PipelineKey, list[Change]] = {}
        for old, new in changes:
            touched.setdefault(key_of(new), []).append((old, new))
            if old is not None and key_of(old) != key_of(new):
                touched.setdefault(key_of(old), []).append((old, new))
        current: dict[PipelineKey, PipelineState] = {}
        missing = list(touched)
        if cache is not None:
            current = {k: s for k in touched if (s := cache.pipelines.get(k)) is not None}
            missing = [k for k in touched if k not in current]
        kept = self.deferred
        # The states kept back go in first when a statement below reads the table for one
        # of them (its state, or its last success for the failures after it).
        flushed = (
            kept is not None
            and len(kept) > 0
            and any(
                k in kept and (k not in current or cache is None or cache.streaks.get(k) is None)
                for k in touched
            )
        )
        if flushed:
            self._flush_in(cur)
        if missing:
            self.stage_pipeline_keys(cur, missing)
            self._q(cur, _SELECT_STAGED_PIPELINES)
            current.update((s.key, s) for s in (PipelineState(*row) for row in cur.fetchall()))
        states: list[PipelineState] = []
        recount: list[PipelineKey] = []
        removed: list[PipelineKey] = []
        streaks: dict[PipelineKey, Streak | None] = {}

        # The failures since each pipeline's last success, read once for all the touched
        # pipelines the first time a late success needs them (one query, not one a key).
        fetched: dict[PipelineKey, Streak] | None = None

        def remembered(key: PipelineKey) -> Streak | None:
            streak = cache.streaks.get(key) if cache is not None else None
            if streak is None and fetched is not None:
                streak = fetched.get(key)
            return streak

        def known_streak(key: PipelineKey) -> Streak | None:
            nonlocal fetched
            if fetched is None and remembered(key) is None:
                fetched = self._read_streaks(cur, touched, current, cache)
            return remembered(key)

        def failures_after(key: PipelineKey, since: datetime) -> int:
            streak = known_streak(key)
            if streak is not None:
                return failures_in(streak, key, touched[key], since)
            project, pipeline, env = key  # too long a streak to read whole
            self._q(
                cur,
                _FAILURES_AFTER,
                {"project": project, "pipeline": pipeline, "env": env, "since": since},
            )
            return int(cur.fetchall()[0][0])

        for key, mine in touched.items():
            try:
                state = advance(key, current.get(key), mine, failures_after)
            except NeedsRecount:
                recount.append(key)
                continue
            states.append(state)
            if cache is not None:
                streak = remembered(key)
                if streak is None and key not in current:
                    streak = {}  # a new pipeline
                streaks[key] = None if streak is None else next_streak(streak, key, mine, state)
        if recount:
            self.stage_pipeline_keys(cur, recount)
            self._q(cur, _RECOUNT_PIPELINES)
            counted = {s.key: s for s in (PipelineState(*row) for row in cur.fetchall())}
            states.extend(counted.values())
            for key in recount:
                if key not in counted:  # its last run left it
                    project, pipeline, env = key
                    self._q(
                        cur,
                        _DELETE_PIPELINE,
                        {"project": project, "pipeline": pipeline, "env": env},
                    )
                    removed.append(key)
        if kept is None:
            self._write_pipelines(cur, states, current)
            return PipelineUpdate(states, removed, streaks)
        # A run that left a pipeline is not among its runs any more, so a recount after a
        # crash would not find that pipeline: such a commit writes every state it has.
        moved = any(old is not None and key_of(old) != key_of(new) for old, new in changes)
        back = self._write_pipelines(cur, states, current, keep_back=True)
        if moved or (not flushed and kept.due()):  # written now, with those kept back
            pending = {} if flushed else {s.key: s for s in kept.states()}
            pending.update((s.key, s) for s in back)
            self._states_into(cur, _UPDATE_PIPELINES, list(pending.values()))
            return PipelineUpdate(states, removed, streaks, flushed=True)
        return PipelineUpdate(states, removed, streaks, kept=back, flushed=flushed)

    def _write_pipelines(
        self,
        cur: Cursor,
        states: list[PipelineState],
        stored: Collection[PipelineKey],
        *,
        keep_back: bool = False,
    ) -> list[PipelineState]:
        """Write new states: UPDATE those whose key is ``stored``, INSERT the others. With
        ``keep_back`` the stored ones are not written but returned (deferred.py)."""
        old = [s for s in states if s.key in stored]
        new = [s for s in states if s.key not in stored]
        self._states_into(cur, _INSERT_NEW_PIPELINES, new)
        if keep_back:
            return old
        self._states_into(cur, _UPDATE_PIPELINES, old)
        return []

    def _states_into(self, cur: Cursor, statement: str, states: list[PipelineState]) -> None:
        """Stage these states and run ``statement`` (an INSERT or UPDATE from the staged
        states) on them; nothing when there are none."""
        if states:
            self.stage_pipelines(
                cur, [tuple(getattr(s, c) for c in PIPELINE_COLUMNS) for s in states]
            )
            self._q(cur, statement)

    def _mark_kept(self, cur: Cursor, update: PipelineUpdate, written_at: datetime) -> None:
        """Keep the writer's mark at the time of the earliest runs whose pipelines' states
        are kept back, in the transaction that writes them (none: no mark)."""
        kept = self.deferred
        if kept is None:
            return
        earlier = len(kept) > 0 and not update.flushed  # kept back still, and marked
        if update.kept and not earlier:
            self._q(cur, _SET_MARK, {"name": MARK, "at": written_at})
        elif update.flushed and not update.kept:
            self._q(cur, _DROP_MARK, {"name": MARK})

    def _flush_in(self, cur: Cursor) -> None:
        """Write the kept-back states in this transaction (the caller tells ``deferred``
        once it is committed)."""
        assert self.deferred is not None
        self._states_into(cur, _UPDATE_PIPELINES, self.deferred.states())

    def flush_pipelines(self) -> None:
        """Write the kept-back pipeline states now (writer thread, or once it has stopped)."""
        kept = self.deferred
        if not kept:
            return
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            self._flush_in(cur)
            self._q(cur, _DROP_MARK, {"name": MARK})
        kept.committed((), flushed=True)

    def pipelines_flush_in(self) -> float | None:
        """How long an idle writer may wait before ``flush_pipelines`` (None: no need)."""
        return self.deferred.flush_in() if self.deferred is not None else None

    def pipelines_kept_back(self) -> int:
        return len(self.deferred) if self.deferred is not None else 0

    def pending_pipelines(self) -> Mapping[PipelineKey, PipelineState]:
        """The kept-back states, for a read of the table to lay over what it reads (take
        them before the read)."""
        return self.deferred.pending() if self.deferred is not None else {}

    def _read_streaks(
        self,
        cur: Cursor,
        touched: Mapping[PipelineKey, list[Change]],
        current: Mapping[PipelineKey, PipelineState],
        cache: WriteCache | None,
    ) -> dict[PipelineKey, Streak]:
        """The failed runs after the stored last success of each touched pipeline whose
        streak is not remembered and not too long to read (the runs as written so far in
        this transaction: ``failures_in`` takes the commit's own changes into account)."""
        keys = [
            k
            for k in touched
            if (cache is None or cache.streaks.get(k) is None)
            and (k not in current or current[k].consecutive_failures <= LONGEST_STREAK)
        ]
        out: dict[PipelineKey, Streak] = {k: {} for k in keys}
        if keys:
            self.stage_pipeline_keys(cur, keys)
            self._q(cur, _SELECT_STREAKS)
            for project, pipeline, env, run_id, t in cur.fetchall():
                out[(project, pipeline, env)][run_id] = t
        return out

    # -- reads -------------------------------------------------------------------------
    def run_from_row(self, row: Sequence[Any]) -> RunRecord:
        return record_from_row(row)

    def pipeline_from_row(self, row: Sequence[Any]) -> PipelineState:
        return PipelineState(*row)

    def read_batch(self, row: Sequence[Any]) -> BatchRow:
        return batch_from_row(row)

    def _select_runs(
        self, where: str, params: Mapping[str, Any], tail: str = ""
    ) -> list[RunRecord]:
        with self.reader() as cur:
            self._q(cur, f"SELECT {self.run_select} FROM runs WHERE {where} {tail}", params)
            return [self.run_from_row(row) for row in cur.fetchall()]

    def get_run(self, run_id: str) -> RunRecord:
        rows = self._select_runs("run_id = :run_id", {"run_id": run_id})
        if not rows:
            raise NotFound("run", run_id)
        return rows[0]

    def get_runs(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        if not run_ids:
            return {}
        with self.reader() as cur:
            self._q(cur, _SELECT_RUNS_ANY.format(select=self.run_select), {"ids": list(run_ids)})
            return {row[0]: self.run_from_row(row) for row in cur.fetchall()}

    def list_pipeline_runs(
        self, project: str, pipeline: str, env: str, limit: int
    ) -> list[RunRecord]:
        return self._select_runs(
            "project = :project AND pipeline = :pipeline AND env = :env",
            {"project": project, "pipeline": pipeline, "env": env, "limit": limit},
            "ORDER BY sort_at DESC, run_id DESC LIMIT :limit",
        )

    def list_recent_runs(
        self, since: datetime, limit: int, project: str | None = None, env: str | None = None
    ) -> dict[PipelineKey, list[RunRecord]]:
        where = ["sort_at >= :since"]
        params: dict[str, Any] = {"since": since, "limit": limit}
        for name, value in (("project", project), ("env", env)):
            if value is not None:
                where.append(f"{name} = :{name}")
                params[name] = value
        query = _RECENT_RUNS.format(select=self.run_select, where=" AND ".join(where))
        out: dict[PipelineKey, list[RunRecord]] = {}
        with self.reader() as cur:
            self._q(cur, query, params)
            for row in cur.fetchall():
                record = self.run_from_row(row)
                out.setdefault((record.project, record.pipeline, record.env), []).append(record)
        return out

    def _select_batches(
        self, where: str, params: Mapping[str, Any], tail: str = ""
    ) -> list[BatchRow]:
        with self.reader() as cur:
            self._q(cur, f"SELECT {self.batch_select} FROM batches WHERE {where} {tail}", params)
            return [self.read_batch(row) for row in cur.fetchall()]

    def list_batches(self, query: BatchQuery) -> list[BatchRow]:
        where = ["sort_at >= :since"]
        params: dict[str, Any] = {"since": query.since, "limit": query.limit}
        for name in ("until", "env", "project"):
            value = getattr(query, name)
            if value is not None:
                where.append("sort_at < :until" if name == "until" else f"{name} = :{name}")
                params[name] = value
        return self._select_batches(
            " AND ".join(where), params, "ORDER BY sort_at DESC, batch_id DESC LIMIT :limit"
        )

    def find_batches(self, batch_id: str) -> list[BatchRow]:
        return self._select_batches("batch_id = :b", {"b": batch_id}, "ORDER BY project")

    def get_batch(self, project: str, batch_id: str) -> BatchRow:
        rows = self._select_batches("project = :p AND batch_id = :b", {"p": project, "b": batch_id})
        if not rows:
            raise NotFound("batch", batch_id)
        return rows[0]

    def list_batch_runs(self, query: RunQuery) -> tuple[int, list[RunRecord]]:
        where = "project = :project AND batch_id = :batch_id"
        params: dict[str, Any] = {"project": query.project, "batch_id": query.batch_id}
        if query.statuses:
            names = [f"s{i}" for i in range(len(query.statuses))]
            where += f" AND status IN ({', '.join(':' + n for n in names)})"
            params.update(zip(names, query.statuses, strict=True))
        with self.reader() as cur:
            self._q(cur, f"SELECT count(*) FROM runs WHERE {where}", params)
            total = int(cur.fetchall()[0][0])
        order = "DESC" if query.order == "desc" else "ASC"
        tail = f"ORDER BY {RUN_SORTS[query.sort]} {order} NULLS LAST, run_id {order}"
        if query.limit is not None:
            tail += " LIMIT :limit OFFSET :offset"
            params |= {"limit": query.limit, "offset": query.offset}
        return total, self._select_runs(where, params, tail)

    def list_pipelines(
        self, project: str | None = None, env: str | None = None
    ) -> list[PipelineState]:
        params = {n: v for n, v in (("project", project), ("env", env)) if v is not None}
        where = " AND ".join(f"{n} = :{n}" for n in params)
        pending = self.pending_pipelines()  # before the read: see deferred.py
        with self.reader() as cur:
            self._q(
                cur,
                f"SELECT {self.pipeline_select} FROM pipelines "
                f"{'WHERE ' + where if where else ''} ORDER BY project, pipeline, env",
                params,
            )
            return lay_over(pending, [self.pipeline_from_row(row) for row in cur.fetchall()])

    def count_runs(self) -> int:
        with self.reader() as cur:
            self._q(cur, "SELECT count(*) FROM runs")
            return int(cur.fetchall()[0][0])

    # -- backend hooks -----------------------------------------------------------------
    driver_errors: ClassVar[tuple[type[BaseException], ...]]
    # What the driver raises for a duplicate primary key (only stores that keep a
    # WriteCache guess new runs and need it).
    conflict_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    @abc.abstractmethod
    def reader(self) -> AbstractContextManager[Cursor]:
        """A cursor for reads, usable from any thread."""

    @abc.abstractmethod
    def write_transaction(self) -> AbstractContextManager[Cursor]:
        """The writer's cursor inside one transaction: committed on exit, rolled back on error."""

    def lock_schema(self, cur: Cursor) -> None:
        """Keep two processes from migrating at once (where the backend needs it)."""

    def lock_writes(self, cur: Cursor) -> None:
        """Keep writers of other processes out until this transaction ends (where needed)."""

    @abc.abstractmethod
    def stage_runs(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        """Make ``rows`` readable as the relation ``staged_runs`` (columns RUN_COLUMNS)."""

    @abc.abstractmethod
    def stage_keys(self, cur: Cursor, keys: list[BatchKey]) -> None:
        """Make ``keys`` readable as ``staged_keys`` (project, batch_id)."""

    @abc.abstractmethod
    def stage_ids(self, cur: Cursor, ids: list[str]) -> None:
        """Make ``ids`` readable as ``staged_ids`` (run_id)."""

    @abc.abstractmethod
    def stage_pipeline_keys(self, cur: Cursor, keys: list[PipelineKey]) -> None:
        """Make ``keys`` readable as ``staged_pkeys`` (project, pipeline, env)."""

    @abc.abstractmethod
    def stage_pipelines(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        """Make ``rows`` readable as ``staged_pipelines`` (columns PIPELINE_COLUMNS)."""

    @abc.abstractmethod
    def stage_batches(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> None:
        """Make ``rows`` readable as ``staged_batches`` (columns BATCH_COLUMNS)."""
