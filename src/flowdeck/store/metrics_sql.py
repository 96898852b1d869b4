"""Metric points, rollups and definitions: the store methods of the metrics, mixed into
:class:`flowdeck.store.sql.SqlStore` so both backends share them.

Every write runs on the writer thread (``ingest/writer.py``). Points go to ``metric_points``
and, in the same transaction, into the rollups of every level: count, sum, min and max per
bucket in ``metric_rollups`` and the bins of the percentile sketch in one table per level
(:data:`BIN_TABLES`), so that a query reads only the bins of its level. A late point merges
into the bucket it belongs to, like any other.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from flowdeck.errors import InvalidInput, NotFound
from flowdeck.store.metric_cells import MetricCells
from flowdeck.timeseries import sketch
from flowdeck.timeseries.points import PointBatch, SeriesKey, series_problem, tags_json

if TYPE_CHECKING:
    from flowdeck.store.sql import Cursor

# Rollup levels: bucket widths in seconds (1m, 5m, 1h, 1d).
LEVELS: Final = (60, 300, 3_600, 86_400)
# The sketch bins of each level (schema version 9): (series_id, bucket, sign, bin, n).
BIN_TABLES: Final[Mapping[int, str]] = {
    60: "metric_bins_1m",
    300: "metric_bins_5m",
    3_600: "metric_bins_1h",
    86_400: "metric_bins_1d",
}

_SERIES_COLUMNS: Final = (("series_id", "BIGINT"), ("project", "TEXT"), ("name", "TEXT"))
_POINT_COLUMNS: Final = (
    ("series_id", "BIGINT"),
    ("t", "BIGINT"),
    ("sec", "BIGINT"),
    ("value", "DOUBLE PRECISION"),
)
_ARROW: Final[Mapping[str, pa.DataType]] = {
    "BIGINT": pa.int64(),
    "TEXT": pa.string(),
    "JSONB": pa.string(),
    "DOUBLE PRECISION": pa.float64(),
}


def _bucket(column: str, width: str) -> str:
    """The start of the ``width``-wide bucket holding ``column`` (integers, floor)."""
    return f"{column} - (({column} % {width}) + {width}) % {width}"


_SIGN, _BIN = sketch.bin_sql("value")
_INSERT_POINTS: Final = (
    "INSERT INTO metric_points (series_id, t, value) SELECT series_id, t, value FROM staged_mpoints"
)
_MERGE_ROLLUPS: Final = f"""
INSERT INTO metric_rollups (series_id, level, bucket, n, total, lo, hi)
SELECT series_id, :w, {_bucket("sec", ":w")} AS b, count(*), sum(value), min(value), max(value)
FROM staged_mpoints GROUP BY series_id, b
ON CONFLICT (series_id, level, bucket) DO UPDATE SET
    n = metric_rollups.n + excluded.n,
    total = metric_rollups.total + excluded.total,
    lo = least(metric_rollups.lo, excluded.lo),
    hi = greatest(metric_rollups.hi, excluded.hi)
"""
_MERGE_BINS: Final = {
    width: f"""
INSERT INTO {table} (series_id, bucket, sign, bin, n)
SELECT series_id, {_bucket("sec", str(width))} AS b, s, k, count(*)
FROM (SELECT series_id, sec, {_SIGN} AS s, {_BIN} AS k FROM staged_mpoints) p
GROUP BY series_id, b, s, k
ON CONFLICT (series_id, bucket, sign, bin) DO UPDATE SET n = {table}.n + excluded.n
"""
    for width, table in BIN_TABLES.items()
}
# Per group of series (``{members}``: series_id → group number g; a series may be a group of
# its own): the database adds the series of a group up, so the rows read back are groups ×
# buckets.
_GROUP_ROLLUP_ROWS: Final = f"""
SELECT m.g, {_bucket("r.bucket", ":step")} AS sb, CAST(sum(r.n) AS BIGINT), sum(r.total),
       min(r.lo), max(r.hi)
FROM metric_rollups r JOIN ({{members}}) m ON r.series_id = m.series_id
WHERE r.level = :level AND r.bucket >= :a AND r.bucket < :b
GROUP BY m.g, sb ORDER BY m.g, sb
"""
_GROUP_ROLLUP_VALUE: Final = f"""
SELECT m.g, {_bucket("r.bucket", ":step")} AS sb, {{value}}
FROM metric_rollups r JOIN ({{members}}) m ON r.series_id = m.series_id
WHERE r.level = :level AND r.bucket >= :a AND r.bucket < :b
GROUP BY m.g, sb ORDER BY m.g, sb
"""
_ROLLUP_VALUES: Final = {
    "count": "CAST(sum(r.n) AS BIGINT)",
    "sum": "sum(r.total)",
    "avg": "sum(r.total) / CAST(sum(r.n) AS DOUBLE PRECISION)",
    "min": "min(r.lo)",
    "max": "max(r.hi)",
}
_GROUP_ROLLUP_BINS: Final = {
    width: f"""
SELECT m.g, {_bucket("r.bucket", ":step")} AS sb, r.sign, r.bin, CAST(sum(r.n) AS BIGINT) AS n
FROM {table} r JOIN ({{members}}) m ON r.series_id = m.series_id
WHERE r.bucket >= :a AND r.bucket < :b
GROUP BY m.g, sb, r.sign, r.bin
"""
    for width, table in BIN_TABLES.items()
}
_GROUP_RAW_ROWS: Final = f"""
SELECT m.g, {_bucket("p.t", ":step")} AS sb, count(*), sum(p.value), min(p.value),
       max(p.value)
FROM metric_points p JOIN ({{members}}) m ON p.series_id = m.series_id
WHERE p.t >= :a AND p.t < :b
GROUP BY m.g, sb ORDER BY m.g, sb
"""
_GROUP_RAW_VALUE: Final = f"""
SELECT m.g, {_bucket("p.t", ":step")} AS sb, {{value}}
FROM metric_points p JOIN ({{members}}) m ON p.series_id = m.series_id
WHERE p.t >= :a AND p.t < :b
GROUP BY m.g, sb ORDER BY m.g, sb
"""
_RAW_VALUES: Final = {
    "count": "count(*)",
    "sum": "sum(p.value)",
    "avg": "sum(p.value) / CAST(count(*) AS DOUBLE PRECISION)",
    "min": "min(p.value)",
    "max": "max(p.value)",
}
_GROUP_RAW_BINS: Final = f"""
SELECT g, sb, s AS sign, k AS bin, count(*) AS n FROM (
    SELECT m.g, {_bucket("p.t", ":step")} AS sb, {_SIGN.replace("value", "p.value")} AS s,
           {_BIN.replace("value", "p.value")} AS k
    FROM metric_points p JOIN ({{members}}) m ON p.series_id = m.series_id
    WHERE p.t >= :a AND p.t < :b
) q GROUP BY g, sb, s, k
"""
_PRUNE_SERIES: Final = """
DELETE FROM metric_series WHERE NOT EXISTS (
    SELECT 1 FROM metric_rollups r WHERE r.series_id = metric_series.series_id
) AND NOT EXISTS (
    SELECT 1 FROM metric_points p WHERE p.series_id = metric_series.series_id
)
"""

# Per series and step bucket: (count, sum, min, max).


@dataclass(frozen=True, slots=True)
class MetricDefinitionRow:
    name: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _scale(level: int) -> int:
    """Units per second of the times read at ``level``: raw points (0) are kept in
    microseconds, rollup buckets in seconds."""
    return 1_000_000 if level == 0 else 1


def _json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        return orjson.loads(value)
    return value if value is not None else {}


class MetricsSql(MetricCells, abc.ABC):
    """The metrics half of the SQL store (see the module's docstring)."""

    backend: str
    driver_errors: ClassVar[tuple[type[BaseException], ...]]
    # _q, reader, write_transaction and lock_writes: declared by MetricCells.

    # -- staging (the one place the backends differ here) --------------------------------
    @contextmanager
    def _metric_staging(self, cur: Cursor) -> Iterator[_Stager]:
        stager = _Stager(self, cur)
        try:
            yield stager
        finally:
            stager.release()

    # -- writes: only the writer thread calls these --------------------------------------
    def add_points(
        self, batches: Sequence[PointBatch], max_series: int, now: datetime
    ) -> list[InvalidInput | None]:
        """In one transaction: register the batches' new series, append their points and
        merge them into every rollup level. A batch that would take a metric over
        ``max_series`` tag combinations is refused whole (its entry is the InvalidInput);
        the others are written (their entry is None)."""
        with self.write_transaction() as cur, self._metric_staging(cur) as stage:
            self.lock_writes(cur)
            distinct: dict[int, SeriesKey] = {}
            for batch in batches:
                for key in batch.series:
                    distinct.setdefault(key.series_id, key)
            stage(
                "staged_mseries",
                _SERIES_COLUMNS,
                [
                    list(distinct),
                    [k.project for k in distinct.values()],
                    [k.name for k in distinct.values()],
                ],
            )
            self._q(
                cur,
                "SELECT series_id FROM metric_series "
                "WHERE series_id IN (SELECT series_id FROM staged_mseries)",
            )
            known = {int(row[0]) for row in cur.fetchall()}
            self._q(
                cur,
                "SELECT s.project, s.name, count(*) FROM metric_series s "
                "JOIN (SELECT DISTINCT project, name FROM staged_mseries) k "
                "ON s.project = k.project AND s.name = k.name GROUP BY s.project, s.name",
            )
            counts: dict[tuple[str, str], int] = {(r[0], r[1]): int(r[2]) for r in cur.fetchall()}
            outcome: list[InvalidInput | None] = []
            new: dict[int, SeriesKey] = {}
            accepted: list[PointBatch] = []
            for batch in batches:
                mine: dict[int, tuple[SeriesKey, str]] = {}
                for key, where in zip(batch.series, batch.where, strict=True):
                    sid = key.series_id
                    if sid not in known and sid not in new:
                        mine.setdefault(sid, (key, where))
                added: dict[tuple[str, str], int] = {}
                problem = None
                for key, where in mine.values():
                    metric = (key.project, key.name)
                    added[metric] = added.get(metric, 0) + 1
                    total = counts.get(metric, 0) + added[metric]
                    if total > max_series and problem is None:
                        problem = series_problem(where, key, total, max_series)
                if problem is not None:
                    outcome.append(InvalidInput([problem]))
                    continue
                for metric, n in added.items():
                    counts[metric] = counts.get(metric, 0) + n
                new.update((sid, key) for sid, (key, _) in mine.items())
                accepted.append(batch)
                outcome.append(None)
            if new:
                stage(
                    "staged_mseries_new",
                    (*_SERIES_COLUMNS, ("tags", "JSONB")),
                    [
                        list(new),
                        [k.project for k in new.values()],
                        [k.name for k in new.values()],
                        [tags_json(k.tag_map) for k in new.values()],
                    ],
                )
                self._q(
                    cur,
                    "INSERT INTO metric_series (series_id, project, name, tags, created_at) "
                    "SELECT series_id, project, name, tags, :now FROM staged_mseries_new",
                    {"now": now},
                )
            if accepted:
                ids = pa.concat_arrays(
                    [
                        pc.take(
                            pa.array([k.series_id for k in b.series], pa.int64()), b.series_index
                        )
                        for b in accepted
                    ]
                )
                t = pa.concat_arrays([b.times_us for b in accepted])
                values = pa.concat_arrays([b.values for b in accepted])
                stage("staged_mpoints", _POINT_COLUMNS, [ids, t, pc.divide(t, 1_000_000), values])
                self._q(cur, _INSERT_POINTS)
                for width in LEVELS:
                    self._q(cur, _MERGE_ROLLUPS, {"w": width})
                    self._q(cur, _MERGE_BINS[width], sketch.bin_params())
                self._mark_stale(cur)
        return outcome

    def compact_metrics(self, raw_before_us: int, rollups_before: Mapping[int, int]) -> None:
        """Drop raw points older than ``raw_before_us`` (microseconds since 1970) and, per
        level, buckets that end at or before ``rollups_before[level]`` (seconds); then
        forget series left without data."""
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            self._q(cur, "DELETE FROM metric_points WHERE t < :cut", {"cut": raw_before_us})
            for width, cut in rollups_before.items():
                self._q(
                    cur,
                    "DELETE FROM metric_rollups WHERE level = :w AND bucket + :w <= :cut",
                    {"w": width, "cut": cut},
                )
                self._q(
                    cur,
                    f"DELETE FROM {BIN_TABLES[width]} WHERE bucket + :w <= :cut",
                    {"w": width, "cut": cut},
                )
            self._q(cur, _PRUNE_SERIES)
            self._drop_cells(cur, rollups_before)

    def put_metric_definition(self, name: str, spec: Mapping[str, Any], now: datetime) -> bool:
        """Create or replace a named definition; True when it is new."""
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            self._q(cur, "SELECT 1 FROM metric_definitions WHERE name = :name", {"name": name})
            exists = bool(cur.fetchall())
            params = {"name": name, "spec": orjson.dumps(spec).decode(), "now": now}
            if exists:
                self._q(
                    cur,
                    "UPDATE metric_definitions SET spec = CAST(:spec AS {json}), updated_at = :now "
                    "WHERE name = :name".replace("{json}", self._json_type),
                    params,
                )
            else:
                self._q(
                    cur,
                    "INSERT INTO metric_definitions (name, spec, created_at, updated_at) "
                    "VALUES (:name, CAST(:spec AS {json}), :now, :now)".replace(
                        "{json}", self._json_type
                    ),
                    params,
                )
        return not exists

    def delete_metric_definition(self, name: str) -> None:
        """Raises NotFound for an unknown name."""
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            self._q(cur, "SELECT 1 FROM metric_definitions WHERE name = :name", {"name": name})
            if not cur.fetchall():
                raise NotFound("metric definition", name)
            self._q(cur, "DELETE FROM metric_definitions WHERE name = :name", {"name": name})

    # -- reads ---------------------------------------------------------------------------
    @property
    def _json_type(self) -> str:
        return "JSONB" if self.backend == "postgresql" else "JSON"

    def get_metric_definition(self, name: str) -> MetricDefinitionRow:
        rows = self._definitions("WHERE name = :name", {"name": name})
        if not rows:
            raise NotFound("metric definition", name)
        return rows[0]

    def list_metric_definitions(self) -> list[MetricDefinitionRow]:
        return self._definitions("", {})

    def _definitions(self, where: str, params: Mapping[str, Any]) -> list[MetricDefinitionRow]:
        with self.reader() as cur:
            self._q(
                cur,
                f"SELECT name, spec, created_at, updated_at FROM metric_definitions {where} "
                "ORDER BY name",
                params,
            )
            return [MetricDefinitionRow(r[0], _json(r[1]), r[2], r[3]) for r in cur.fetchall()]

    def list_metric_names(self, project: str) -> list[tuple[str, int]]:
        """The metrics of a project with their number of series, by name."""
        with self.reader() as cur:
            self._q(
                cur,
                "SELECT name, count(*) FROM metric_series WHERE project = :project "
                "GROUP BY name ORDER BY name",
                {"project": project},
            )
            return [(r[0], int(r[1])) for r in cur.fetchall()]

    def list_metric_series(self, project: str, name: str) -> dict[int, dict[str, str]]:
        """Every series of a metric: series_id → tags."""
        with self.reader() as cur:
            return self._series_tags(cur, project, name)

    def _series_tags(self, cur: Cursor, project: str, name: str) -> dict[int, dict[str, str]]:
        self._q(
            cur,
            "SELECT series_id, tags FROM metric_series WHERE project = :project AND name = :name",
            {"project": project, "name": name},
        )
        return {int(r[0]): _json(r[1]) for r in cur.fetchall()}

    def summarize_groups(
        self, members: Mapping[int, int], level: int, start: int, end: int, step: int
    ) -> list[tuple[int, int, int, float, float, float]]:
        """Per group of series and step bucket: count, sum, min, max of the points in
        [start, end) seconds, from the rollups of ``level`` (0: the raw points; ``step`` is a
        multiple of ``level``). ``members`` maps series_id → group number (a series may be
        its own group); rows (group, bucket start in seconds, count, sum, min, max), ordered
        by group and bucket."""
        query = _GROUP_RAW_ROWS if level == 0 else _GROUP_ROLLUP_ROWS
        rows = self._group_rows(query, members, level, start, end, step, {})
        scale = _scale(level)
        return [
            (int(r[0]), int(r[1]) // scale, int(r[2]), float(r[3]), float(r[4]), float(r[5]))
            for r in rows
        ]

    def group_values(
        self,
        members: Mapping[int, int],
        level: int,
        start: int,
        end: int,
        step: int,
        aggregation: str,
    ) -> list[tuple[int, int, float | int]]:
        """Like :meth:`summarize_groups`, one aggregation (count, sum, avg, min or max)
        computed by the database: rows (group, bucket start in seconds, value). A third of
        the columns to read back, which is most of the time a long range takes."""
        if level == 0:
            query = _GROUP_RAW_VALUE.replace("{value}", _RAW_VALUES[aggregation])
        else:
            query = _GROUP_ROLLUP_VALUE.replace("{value}", _ROLLUP_VALUES[aggregation])
        rows = self._group_rows(query, members, level, start, end, step, {})
        if level == 0:
            return [(r[0], r[1] // 1_000_000, r[2]) for r in rows]
        return rows

    def group_bins(
        self, members: Mapping[int, int], level: int, start: int, end: int, step: int
    ) -> dict[tuple[int, int], list[sketch.Bin]]:
        """Like :meth:`summarize_groups`, the percentile sketches: (group, bucket) → the bins
        of the group's sketch in that bucket (the series' sketches merged in SQL)."""
        query = _GROUP_RAW_BINS if level == 0 else _GROUP_ROLLUP_BINS[level]
        params = sketch.bin_params() if level == 0 else {}
        rows = self._group_rows(query, members, level, start, end, step, params)
        scale = _scale(level)
        out: dict[tuple[int, int], list[sketch.Bin]] = {}
        for g, sb, sign, key, n in rows:
            out.setdefault((g, sb // scale), []).append((sign, key, n))
        return out

    def group_quantiles(
        self, members: Mapping[int, int], level: int, start: int, end: int, step: int, q: float
    ) -> list[tuple[int, int, float]]:
        """Like :meth:`group_bins`, the quantile ``q`` (0..1) of each group's merged sketch,
        found by the database (``sketch.quantile_sql``) without reading the bins back: rows
        (group, bucket start in seconds, value), ordered by group and bucket. Each value is
        the one ``sketch.quantile`` gives over the bins of ``group_bins``."""
        bins = _GROUP_RAW_BINS if level == 0 else _GROUP_ROLLUP_BINS[level]
        params = {**(sketch.bin_params() if level == 0 else {}), **sketch.quantile_params([q])}
        query = sketch.quantile_sql(bins)
        rows = self._group_rows(query, members, level, start, end, step, params)
        scale = _scale(level)
        return [(int(r[0]), int(r[1]) // scale, sketch.picks([q], r[2:])[0]) for r in rows]

    def _group_rows(
        self,
        query: str,
        members: Mapping[int, int],
        level: int,
        start: int,
        end: int,
        step: int,
        extra: Mapping[str, Any],
    ) -> list[Any]:
        if not members:
            return []
        with self.reader() as cur:
            return self._group_query(cur, query, members, level, start, end, step, extra)

    def _bins_query(self, level: int) -> str:
        return _GROUP_ROLLUP_BINS[level]

    def _group_query(
        self,
        cur: Cursor,
        query: str,
        members: Mapping[int, int],
        level: int,
        start: int,
        end: int,
        step: int,
        extra: Mapping[str, Any],
    ) -> list[Any]:
        """``query`` with ``{members}`` and the range's parameters filled in, on ``cur``."""
        if not members:
            return []
        scale = _scale(level)
        params: dict[str, Any] = {
            **({"level": level} if ":level" in query else {}),
            "a": start * scale,
            "b": end * scale,
            "step": step * scale,
            **extra,
        }
        # Whole numbers written into the text (int() makes sure of it): binding two
        # parameters per series cost more than the rest of a long range's query.
        pairs = [f"({int(sid)}, {int(group)})" for sid, group in members.items()]
        members_sql = f"SELECT * FROM (VALUES {', '.join(pairs)}) AS v (series_id, g)"
        self._q(cur, query.replace("{members}", members_sql), params)
        return list(cur.fetchall())

    def run_values(
        self, project: str, column_sql: str, start: datetime, end: datetime
    ) -> list[tuple[datetime, str, str, str, dict[str, Any], float]]:
        """(sort_at, pipeline, env, status, labels, value) of the project's runs that started
        in [start, end) and have a value; ``column_sql`` is one of the fixed expressions of
        ``timeseries/runs.py``, never client text."""
        with self.reader() as cur:
            self._q(
                cur,
                f"SELECT sort_at, pipeline, env, status, labels, {column_sql} FROM runs "
                "WHERE project = :project AND sort_at >= :a AND sort_at < :b",
                {"project": project, "a": start, "b": end},
            )
            return [
                (r[0], r[1], r[2], r[3], _json(r[4]), float(r[5]))
                for r in cur.fetchall()
                if r[5] is not None
            ]


class _Stager:
    """Makes columns readable as a relation of the writer's transaction: an Arrow table
    registered on DuckDB, a temporary table filled by COPY on PostgreSQL."""

    def __init__(self, store: MetricsSql, cur: Cursor) -> None:
        self.store = store
        self.cur = cur
        self.names: list[str] = []

    def __call__(
        self,
        name: str,
        columns: Sequence[tuple[str, str]],
        data: Sequence[Sequence[Any] | pa.Array],
    ) -> None:
        if self.store.backend == "duckdb":
            table = pa.Table.from_arrays(
                [
                    col if isinstance(col, pa.Array) else pa.array(col, _ARROW[kind])
                    for col, (_, kind) in zip(data, columns, strict=True)
                ],
                names=[c for c, _ in columns],
            )
            self.cur.register(name, table)  # type: ignore[attr-defined]
            self.names.append(name)
            return
        self.store._q(
            self.cur,
            f"CREATE TEMP TABLE IF NOT EXISTS {name} "
            f"({', '.join(f'{c} {kind}' for c, kind in columns)}) ON COMMIT DELETE ROWS",
        )
        if name in self.names:
            self.store._q(self.cur, f"DELETE FROM {name}")
        self.names.append(name)
        rows = zip(
            *(col.to_pylist() if isinstance(col, pa.Array) else col for col in data), strict=True
        )
        with self.cur.copy(f"COPY {name} ({', '.join(c for c, _ in columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)

    def release(self) -> None:
        if self.store.backend == "duckdb":
            for name in dict.fromkeys(self.names):
                self.cur.unregister(name)  # type: ignore[attr-defined]
