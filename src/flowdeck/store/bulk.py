"""Appending a table of new runs (``ingest/columnar.py``) in one transaction: the runs as one
INSERT from Arrow, each touched batch's numbers added to in SQL, each touched pipeline's
state advanced from one aggregate of the new runs. No run becomes a Python object.

Only new runs come this way: the INSERT meets the primary key, and a run_id already stored
(or twice in the table) fails it, the transaction rolls back, and the caller takes the
general path, whose merge knows what to do with a run it has seen before.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb
import pyarrow as pa

from flowdeck.errors import FlowdeckError, StoreUnavailable
from flowdeck.ingest.columnar import COLUMNS
from flowdeck.pipelines import PipelineKey, PipelineState, Streak
from flowdeck.store.base import BatchRow
from flowdeck.store.cache import PipelineUpdate, WriteCache
from flowdeck.store.sql import (
    _RECOUNT_PIPELINES,
    BATCH_COLUMNS,
    PIPELINE_COLUMNS,
    SqlStore,
)
from flowdeck.store.tallies import STATUS_COUNT, SUMMED

INCOMING: Final = "incoming_runs"


class RunsExist(FlowdeckError):
    """Some run of the table is already stored (or is in it twice): merge them instead."""


# DuckDB inserts on one thread unless told that the rows' order in the table does not matter
# (no read of runs depends on it: every one that needs an order says which); then a large
# table goes in on every core and its commit is cheaper too (500,000 runs on two cores:
# 1.1 s instead of 1.7). Only for the writer's cursor, and set back after the append.
PARALLEL_ROWS: Final = 2 * 122_880
_UNORDERED: Final = "SET SESSION preserve_insertion_order = false"
_ORDERED: Final = "SET SESSION preserve_insertion_order = true"
_INSERT: Final = f"""
INSERT INTO runs ({", ".join(COLUMNS)}, created_at, updated_at, sort_at)
SELECT {", ".join(COLUMNS)}, :now, :now, coalesce(started_at, :now) FROM {INCOMING}
"""
# Each touched batch: its stored numbers plus the new runs' (every number of a batch is a
# count, a sum, a least or a greatest, so new runs add to it without a recount; the rules
# are those of sql.batch_aggregates_sql). The earliest creation time of a batch without
# starts is its sort_at, and new runs are created now.
_STATUS_COUNTS: Final = ", ".join(
    f"count(*) FILTER (WHERE status = '{s}') AS {c}" for s, c in STATUS_COUNT.items()
)
_ADDED: Final = ("total", *STATUS_COUNT.values(), *SUMMED, "dq_warning_processes")
INCOMING_SUMS: Final = "incoming_batch_sums"
# What the new runs add to each batch they touch (read beside the INSERT: see append_runs).
_BATCH_SUMS: Final = f"""
SELECT project, batch_id, min(env) AS env, min(started_at) AS started_at,
    max(ended_at) AS ended_at, count(*) AS total,
    {_STATUS_COUNTS},
    {", ".join(f"coalesce(sum({c}), 0) AS {c}" for c in SUMMED)},
    count(*) FILTER (WHERE dq_errors > 0.01 * coalesce(rows_read, 0)) AS dq_warning_processes
FROM {INCOMING} GROUP BY project, batch_id
"""
_ADD_TO_BATCHES: Final = f"""
INSERT INTO batches ({", ".join(BATCH_COLUMNS)})
SELECT a.project, a.batch_id, least(a.env, b.env), least(a.started_at, b.started_at),
    greatest(a.ended_at, b.ended_at),
    coalesce(least(a.started_at, b.started_at), least(b.sort_at, :now)),
    {", ".join(f"a.{c} + coalesce(b.{c}, 0)" for c in _ADDED)},
    :now
FROM {INCOMING_SUMS} a LEFT JOIN batches b ON a.project = b.project AND a.batch_id = b.batch_id
ON CONFLICT (project, batch_id) DO UPDATE SET
{", ".join(f"{c} = excluded.{c}" for c in BATCH_COLUMNS if c not in ("project", "batch_id"))}
RETURNING {{returning}}
"""


_KEY: Final = "project, pipeline, env"
_SAME: Final = "{a}.project = {b}.project AND {a}.pipeline = {b}.pipeline AND {a}.env = {b}.env"

# Per touched pipeline: its stored state and what the new runs add to it, enough for
# ``advance_with_new`` (pipelines.recount is the definition both must agree with).
_PIPELINE_DELTAS: Final = f"""
WITH inc AS (
    SELECT {_KEY}, run_id, status, ended_at, coalesce(started_at, :now) AS t
    FROM {INCOMING}
), best AS (
    -- (t, run_id) orders the runs and is unique, so the latest triple carries the latest
    -- run's status or end: one aggregate where arg_max would take a second.
    SELECT {_KEY}, count(*) AS n,
        max(row(t, run_id, status)) AS last,
        max(row(t, run_id, coalesce(ended_at, t))) FILTER (WHERE status = 'SUCCESS') AS success
    FROM inc GROUP BY {_KEY}
), agg AS (
    -- The new failures: how many after the new success and after the stored one, and
    -- those after the new success (only they can be in the streak: its last success is
    -- that one or a later stored one, so a large file's other failures are not read back).
    SELECT i.project, i.pipeline, i.env,
        count(*) FILTER (WHERE b.success IS NULL OR i.t > b.success[1])
            AS failed_after_new_success,
        count(*) FILTER (WHERE p.last_success_t IS NULL OR i.t > p.last_success_t)
            AS failed_after_stored_success,
        list(row(i.run_id, i.t)) FILTER (WHERE b.success IS NULL OR i.t > b.success[1])
            AS failed
    FROM inc i
    JOIN best b ON {_SAME.format(a="b", b="i")}
    LEFT JOIN pipelines p ON {_SAME.format(a="p", b="i")}
    WHERE i.status = 'FAILED'
    GROUP BY i.project, i.pipeline, i.env
)
SELECT b.project, b.pipeline, b.env, b.n,
    b.last[2], b.last[1], b.last[3],
    b.success[2], b.success[1], b.success[3],
    coalesce(agg.failed_after_new_success, 0), coalesce(agg.failed_after_stored_success, 0),
    agg.failed,
    {", ".join(f"p.{c}" for c in PIPELINE_COLUMNS)}
FROM best b
LEFT JOIN agg ON {_SAME.format(a="agg", b="b")}
LEFT JOIN pipelines p ON {_SAME.format(a="p", b="b")}
"""


@dataclass(frozen=True, slots=True)
class PipelineDelta:
    """What a table of new runs adds to one pipeline."""

    key: PipelineKey
    n: int
    last: tuple[datetime, str, str]  # (t, run_id, status) of its latest new run
    success: tuple[datetime, str, datetime] | None  # (t, run_id, ended) of its latest new success
    failed_after_new_success: int
    failed_after_stored_success: int
    failed: Streak  # the new failed runs after its latest new success (run_id -> start)
    stored: PipelineState | None


def delta_from_row(row: Sequence[Any]) -> PipelineDelta:
    project, pipeline, env, n, last_id, last_t, last_status = row[:7]
    success_id, success_t, success_end, after_new, after_stored, failed = row[7:13]
    stored = row[13:]
    return PipelineDelta(
        key=(project, pipeline, env),
        n=n,
        last=(last_t, last_id, last_status),
        success=(success_t, success_id, success_end) if success_id is not None else None,
        failed_after_new_success=after_new,
        failed_after_stored_success=after_stored,
        failed={run_id: t for run_id, t in failed or ()},
        stored=PipelineState(*stored) if stored[0] is not None else None,
    )


def advance_with_new(delta: PipelineDelta, streak: Streak | None = None) -> PipelineState | None:
    """The pipeline's state once its new runs are stored, or None when only a recount can
    tell. ``streak`` is the stored failed runs after the stored last success, when known:
    with it, a new success older than some stored run needs no recount."""
    p = delta.stored
    last_t, last_id, last_status = delta.last
    if p is not None and (p.last_run_at, p.last_run_id) > (last_t, last_id):
        last_t, last_id, last_status = p.last_run_at, p.last_run_id, p.last_status
    new_best = delta.success is not None and (
        p is None
        or p.last_success_t is None
        or p.last_success_run_id is None
        or (delta.success[0], delta.success[1]) > (p.last_success_t, p.last_success_run_id)
    )
    success_t: datetime | None
    success_id: str | None
    success_end: datetime | None
    if new_best:
        assert delta.success is not None
        success_t, success_id, success_end = delta.success
        stored_after = 0
        if p is not None and p.last_run_at > success_t and p.consecutive_failures:
            # Stored runs after the new success: its failed ones are in the streak.
            if streak is None:
                return None
            stored_after = sum(1 for t in streak.values() if t > success_t)
        failures = delta.failed_after_new_success + stored_after
    else:
        success_t = p.last_success_t if p is not None else None
        success_id = p.last_success_run_id if p is not None else None
        success_end = p.last_success_at if p is not None else None
        failures = (p.consecutive_failures if p is not None else 0) + (
            delta.failed_after_stored_success
        )
    project, pipeline, env = delta.key
    return PipelineState(
        project=project,
        pipeline=pipeline,
        env=env,
        runs=(p.runs if p is not None else 0) + delta.n,
        last_run_id=last_id,
        last_run_at=last_t,
        last_status=last_status,
        last_success_run_id=success_id,
        last_success_t=success_t,
        last_success_at=success_end,
        consecutive_failures=failures,
    )


def streak_after(delta: PipelineDelta, known: Streak | None, state: PipelineState) -> Streak | None:
    """The failed runs after the pipeline's last success once its new runs are stored
    (``state``), from the streak ``known`` before them; None when that does not add up
    (the stored streak was not known and some of its runs still count)."""
    if known is None and (delta.stored is None or not delta.stored.consecutive_failures):
        known = {}
    since = state.last_success_t
    merged = {**(known or {}), **delta.failed}
    out = {run_id: t for run_id, t in merged.items() if since is None or t > since}
    return out if len(out) == state.consecutive_failures else None


class ColumnarAppend(SqlStore):
    """A store that can take new runs as an Arrow table (the DuckDB file: Arrow tables are
    registered with the connection and read in place)."""

    # One thread (so one reader cursor) for what is read beside an append.
    side_reads: ThreadPoolExecutor

    def append_runs(self, table: pa.Table, now: datetime) -> list[BatchRow]:
        """Store a table of new runs (``ingest.columnar.COLUMNS``) created ``now``; returns
        the batches they touched. RunsExist (nothing written) when a run_id is stored already
        or is twice in the table."""
        cache = self._write_cache if self.exclusive_writer else None
        # The read beside the append takes the pipelines' states from their table.
        self.flush_pipelines()
        # DuckDB appends on one thread: what the new runs add to their pipelines and batches
        # is read meanwhile, on a reader cursor and the other core. It reads the new runs
        # and the committed pipelines, which this transaction has not changed before it
        # uses the answer (this writer is the only one).
        added = self.side_reads.submit(self._read_additions, table, now)
        unordered: duckdb.DuckDBPyConnection | None = None
        try:
            with self.write_transaction() as cur:
                self.lock_writes(cur)
                assert isinstance(cur, duckdb.DuckDBPyConnection)
                cur.register(INCOMING, table)
                try:
                    if table.num_rows >= PARALLEL_ROWS:
                        unordered = cur
                        cur.execute(_UNORDERED)
                    cur.execute(self.sql(_INSERT), {"now": now})
                except duckdb.ConstraintException:
                    raise RunsExist("some runs are stored already") from None
                except duckdb.Error as exc:
                    raise StoreUnavailable(f"{self.backend}: {exc}") from exc
                deltas, sums = added.result()
                pipelines = self._advance_pipelines(cur, deltas, cache)
                cur.register(INCOMING_SUMS, sums)
                try:
                    # (the batches as the store reads them: an import touches tens of
                    # thousands, and the driver's zoned timestamps are slow)
                    added_to = _ADD_TO_BATCHES.format(returning=self.batch_select)
                    self._q(cur, added_to, {"now": now})
                    batches = [self.read_batch(row) for row in cur.fetchall()]
                finally:
                    cur.unregister(INCOMING_SUMS)
        except BaseException:
            wait([added])  # it reads the table the caller may drop
            if cache is not None:
                cache.clear()
            raise
        finally:
            if unordered is not None:
                # After the transaction: a failed one refuses every statement until its end.
                with suppress(duckdb.Error):  # (a broken connection is told already)
                    unordered.execute(_ORDERED)
        if cache is not None:
            cache.remember(pipelines, batches, ())
        return batches

    def _read_additions(
        self, table: pa.Table, now: datetime
    ) -> tuple[list[PipelineDelta], pa.Table]:
        """What a table of new runs adds to each pipeline and each batch it touches."""
        with self.reader() as cur:
            assert isinstance(cur, duckdb.DuckDBPyConnection)
            cur.register(INCOMING, table)
            try:
                self._q(cur, _PIPELINE_DELTAS, {"now": now})
                deltas = [delta_from_row(row) for row in cur.fetchall()]
                sums = cur.sql(_BATCH_SUMS).to_arrow_table()
            except duckdb.Error as exc:
                raise StoreUnavailable(f"{self.backend}: {exc}") from exc
            finally:
                cur.unregister(INCOMING)
        return deltas, sums

    def stored_runs(self, table: pa.Table) -> tuple[set[str], set[str]]:
        """Of these new runs (``COLUMNS``): the run ids stored already, and those whose
        stored run has every field as here (merging them again would change nothing)."""
        same = " AND ".join(
            f"r.{c} IS NOT DISTINCT FROM i.{c}"
            for c in COLUMNS
            if c not in ("run_id", "custom_stats", "labels")
        )
        query = f"""
SELECT r.run_id,
       {same} AND json(r.custom_stats)::VARCHAR = json(i.custom_stats)::VARCHAR
              AND json(r.labels)::VARCHAR = json(i.labels)::VARCHAR
FROM runs r JOIN {INCOMING} i ON r.run_id = i.run_id"""
        with self.reader() as cur:
            assert isinstance(cur, duckdb.DuckDBPyConnection)
            cur.register(INCOMING, table)
            try:
                rows = cur.execute(query).fetchall()
            except duckdb.Error as exc:
                raise StoreUnavailable(f"{self.backend}: {exc}") from exc
            finally:
                cur.unregister(INCOMING)
        return {r[0] for r in rows}, {r[0] for r in rows if r[1]}

    def _advance_pipelines(
        self, cur: Any, deltas: list[PipelineDelta], cache: WriteCache | None
    ) -> PipelineUpdate:
        states: list[PipelineState] = []
        streaks: dict[PipelineKey, Streak | None] = {}
        recount: list[PipelineKey] = []
        for delta in deltas:
            streak = cache.streaks.get(delta.key) if cache is not None else None
            state = advance_with_new(delta, streak)
            if state is None:
                recount.append(delta.key)
            else:
                states.append(state)
                streaks[delta.key] = streak_after(delta, streak, state)
        if recount:
            self.stage_pipeline_keys(cur, recount)
            self._q(cur, _RECOUNT_PIPELINES)
            states.extend(PipelineState(*row) for row in cur.fetchall())
        self._write_pipelines(cur, states, {d.key for d in deltas if d.stored is not None})
        return PipelineUpdate(states, [], streaks)
