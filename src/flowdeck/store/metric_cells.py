"""Percentiles kept ready: the p50, p95 and p99 of every metric per bucket of the 5m, 1h and
1d levels, for the whole metric and for each value of each of its tag keys (``metric_cells``).

A percentile over many series is the costly query: the sketches of a group's series are
merged bin by bin for every bucket of the range (30 days at 1 h over 100 series is about
13 M bin rows). The cells hold that answer, computed by the same SQL from the same bins
(``sketch.quantile_sql``), so a query that groups by at most one tag and filters on none
reads one row per group and bucket instead.

Every write of points marks the (series, level, bucket) it touched as stale
(``metric_stale``, in the points' own transaction). A background task
(``timeseries/cells.py``) recomputes the cells of stale buckets on the writer thread, a few
thousand series-buckets per transaction, and clears their marks. A query answers stale
buckets from the bins, as before, and the others from the cells: the answer is the same
either way, only its cost differs.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from flowdeck.timeseries import sketch

if TYPE_CHECKING:
    from flowdeck.store.sql import Cursor

K = TypeVar("K", bound=Hashable)
# The levels that keep cells (seconds) and the quantiles each cell holds.
CELL_LEVELS: Final = (300, 3_600, 86_400)
CELL_QUANTILES: Final[Mapping[float, str]] = {0.50: "p50", 0.95: "p95", 0.99: "p99"}
# The tag of the cells of the whole metric, and the value of the cells of the series that
# lack the grouping tag (tag keys and values are never empty).
WHOLE: Final = ""
# Stale buckets at most this many buckets apart are recomputed by one statement per grouping
# (sparse series would otherwise cost a statement per bucket).
MERGE_GAP: Final = 32
# Series × buckets recomputed per transaction unless the caller says otherwise: the writer
# thread is busy meanwhile (``timeseries/cells.py`` adapts it to the time a transaction takes).
CELL_BUDGET: Final = 2_000

_CELL_COLUMNS: Final = (
    ("project", "TEXT"),
    ("metric", "TEXT"),
    ("level", "BIGINT"),
    ("tag", "TEXT"),
    ("tag_value", "TEXT"),
    ("bucket", "BIGINT"),
    ("p50", "DOUBLE PRECISION"),
    ("p95", "DOUBLE PRECISION"),
    ("p99", "DOUBLE PRECISION"),
)
_MARK_STALE: Final = """
INSERT INTO metric_stale (series_id, level, bucket)
SELECT DISTINCT series_id, CAST(:w AS BIGINT), sec - ((sec % :w) + :w) % :w FROM staged_mpoints
ON CONFLICT DO NOTHING
"""
_METRIC_SERIES: Final = "SELECT series_id FROM metric_series WHERE project = :p AND name = :m"


@dataclass(frozen=True, slots=True)
class StaleMetric:
    """A metric with stale buckets at a level."""

    project: str
    metric: str
    level: int


def bucket_runs(
    buckets: Sequence[int], width: int, gap: int = MERGE_GAP
) -> Iterator[tuple[int, int]]:
    """Ranges ``[start, end)`` covering sorted distinct bucket starts, one range for buckets
    at most ``gap`` buckets apart: a range may hold buckets that are not in the list (each
    range is one statement per grouping; recomputing a fresh bucket gives what it holds)."""
    start = prev = None
    for b in buckets:
        if prev is not None and b - prev <= width * (gap + 1):
            prev = b
            continue
        if start is not None and prev is not None:
            yield start, prev + width
        start = prev = b
    if start is not None and prev is not None:
        yield start, prev + width


def tag_values(series: Mapping[int, Mapping[str, str]], tag: str) -> dict[int, str]:
    """series_id → its value of ``tag`` (``WHOLE`` for the whole metric and for series
    without the tag): the groups of the cells of ``tag``."""
    return {sid: tags.get(tag, WHOLE) if tag else WHOLE for sid, tags in series.items()}


def groupings(series: Mapping[int, Mapping[str, str]]) -> dict[str, dict[int, str]]:
    """Per grouping (``WHOLE`` and each tag key of the series): :func:`tag_values`."""
    keys = sorted({k for tags in series.values() for k in tags})
    return {tag: tag_values(series, tag) for tag in (WHOLE, *keys)}


def numbered(values: Mapping[int, K]) -> tuple[dict[int, int], list[K]]:
    """series_id → group number for series_id → group value (numbered in the order they
    come), and the values by number."""
    numbers: dict[K, int] = {}
    members = {sid: numbers.setdefault(v, len(numbers)) for sid, v in values.items()}
    return members, list(numbers)


class MetricCells(abc.ABC):
    """The cells half of the metrics store (see the module's docstring)."""

    @abc.abstractmethod
    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any: ...

    @abc.abstractmethod
    def reader(self) -> AbstractContextManager[Cursor]: ...

    @abc.abstractmethod
    def write_transaction(self) -> AbstractContextManager[Cursor]: ...

    @abc.abstractmethod
    def lock_writes(self, cur: Cursor) -> None: ...

    @abc.abstractmethod
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
    ) -> list[Any]: ...

    @abc.abstractmethod
    def _metric_staging(self, cur: Cursor) -> AbstractContextManager[Any]: ...

    @abc.abstractmethod
    def _series_tags(self, cur: Cursor, project: str, name: str) -> dict[int, dict[str, str]]:
        """Every series of a metric, read on ``cur``: series_id → tags."""

    @abc.abstractmethod
    def _bins_query(self, level: int) -> str:
        """The SQL of a level's bins merged per group and step bucket (``{members}``)."""

    # -- writes: only the writer thread calls these --------------------------------------
    def _mark_stale(self, cur: Cursor) -> None:
        """In the points' transaction: the buckets of ``staged_mpoints`` need new cells."""
        for width in CELL_LEVELS:
            self._q(cur, _MARK_STALE, {"w": width})

    def stale_metrics(self) -> list[StaleMetric]:
        """The metrics and levels with stale buckets, oldest bucket first."""
        with self.reader() as cur:
            self._q(
                cur,
                "SELECT s.project, s.name, st.level, min(st.bucket) AS first FROM metric_stale st "
                "JOIN metric_series s ON s.series_id = st.series_id "
                "GROUP BY s.project, s.name, st.level ORDER BY first, s.project, s.name, st.level",
            )
            return [StaleMetric(r[0], r[1], int(r[2])) for r in cur.fetchall()]

    def refresh_cells(self, stale: StaleMetric, budget: int = CELL_BUDGET) -> int:
        """Recompute the cells of the oldest stale buckets of one metric at one level (at
        most ``budget`` series × buckets, at least one bucket) and clear their marks.
        Returns the number of buckets done (0: none was stale)."""
        width = stale.level
        key = {"p": stale.project, "m": stale.metric}
        with self.write_transaction() as cur:
            self.lock_writes(cur)
            # Read in the transaction: the cells are of exactly the series whose marks go.
            series = self._series_tags(cur, stale.project, stale.metric)
            limit = max(1, budget // max(1, len(series)))
            self._q(
                cur,
                f"SELECT DISTINCT bucket FROM metric_stale WHERE level = :w "
                f"AND series_id IN ({_METRIC_SERIES}) ORDER BY bucket LIMIT {limit}",
                {**key, "w": width},
            )
            buckets = [int(r[0]) for r in cur.fetchall()]
            if not buckets:
                return 0
            rows: list[tuple[Any, ...]] = []
            ranges = list(bucket_runs(buckets, width))
            for tag, values in groupings(series).items():
                members, names = numbered(values)
                for a, b in ranges:
                    for g, sb, *quantiles in self._cell_quantiles(cur, members, width, a, b):
                        rows.append(
                            (stale.project, stale.metric, width, tag, names[g], sb, *quantiles)
                        )
            for a, b in ranges:
                bounds = {**key, "w": width, "a": a, "b": b}
                self._q(
                    cur,
                    "DELETE FROM metric_cells WHERE project = :p AND metric = :m "
                    "AND level = :w AND bucket >= :a AND bucket < :b",
                    bounds,
                )
                self._q(
                    cur,
                    "DELETE FROM metric_stale WHERE level = :w AND bucket >= :a AND bucket < :b "
                    f"AND series_id IN ({_METRIC_SERIES})",
                    bounds,
                )
            if rows:
                columns = ", ".join(c for c, _ in _CELL_COLUMNS)
                with self._metric_staging(cur) as stage:
                    stage(
                        "staged_mcells", _CELL_COLUMNS, [list(c) for c in zip(*rows, strict=True)]
                    )
                    self._q(
                        cur,
                        f"INSERT INTO metric_cells ({columns}) SELECT {columns} FROM staged_mcells",
                    )
            return len(buckets)

    def _cell_quantiles(
        self, cur: Cursor, members: Mapping[int, int], width: int, start: int, end: int
    ) -> list[tuple[Any, ...]]:
        """(group, bucket, p50, p95, p99) of each group and bucket of [start, end)."""
        qs = list(CELL_QUANTILES)
        query = sketch.quantile_sql(self._bins_query(width), len(qs))
        found = self._group_query(
            cur, query, members, width, start, end, width, sketch.quantile_params(qs)
        )
        return [(int(r[0]), int(r[1]), *sketch.picks(qs, r[2:])) for r in found]

    def _drop_cells(self, cur: Cursor, rollups_before: Mapping[int, int]) -> None:
        """Compaction: cells and marks of buckets past their level's retention, and marks of
        series that are gone."""
        for width, cut in rollups_before.items():
            if width not in CELL_LEVELS:
                continue
            params = {"w": width, "cut": cut}
            self._q(
                cur, "DELETE FROM metric_cells WHERE level = :w AND bucket + :w <= :cut", params
            )
            self._q(
                cur, "DELETE FROM metric_stale WHERE level = :w AND bucket + :w <= :cut", params
            )
        self._q(
            cur,
            "DELETE FROM metric_stale WHERE series_id NOT IN (SELECT series_id FROM metric_series)",
        )

    # -- reads ---------------------------------------------------------------------------
    def cell_quantiles(
        self,
        project: str,
        metric: str,
        tag: str,
        members: Mapping[int, str],
        level: int,
        start: int,
        end: int,
        q: float,
    ) -> list[tuple[str, int, float]]:
        """The quantile ``q`` (one of CELL_QUANTILES) of a metric per value of ``tag``
        (``WHOLE``: the whole metric) and bucket of ``level`` in [start, end) seconds:
        rows (value, bucket, quantile) ordered by value and bucket, the value ``WHOLE`` for
        series without the tag.
        ``members`` maps each of the metric's series to its value. Fresh buckets come from
        the cells, stale ones from the bins, merged as :meth:`refresh_cells` would."""
        column = CELL_QUANTILES[q]
        with self.reader() as cur:
            # The marks first: a bucket refreshed after this read is read from the bins.
            self._q(
                cur,
                f"SELECT DISTINCT bucket FROM metric_stale WHERE level = :w "
                f"AND bucket >= :a AND bucket < :b AND series_id IN ({_METRIC_SERIES}) "
                "ORDER BY bucket",
                {"p": project, "m": metric, "w": level, "a": start, "b": end},
            )
            stale = [int(r[0]) for r in cur.fetchall()]
            self._q(
                cur,
                f"SELECT tag_value, bucket, {column} FROM metric_cells WHERE project = :p "
                "AND metric = :m AND level = :w AND tag = :t AND bucket >= :a AND bucket < :b "
                "ORDER BY tag_value, bucket",
                {"p": project, "m": metric, "w": level, "t": tag, "a": start, "b": end},
            )
            ready: list[tuple[str, int, float]] = cur.fetchall()
            if not stale:
                return ready
            skip = set(stale)
            out = [r for r in ready if r[1] not in skip]
            groups, names = numbered(members)
            at = list(CELL_QUANTILES).index(q)
            for a, b in bucket_runs(stale, level):
                for g, sb, *quantiles in self._cell_quantiles(cur, groups, level, a, b):
                    if sb in skip:  # (a range may hold fresh buckets too)
                        out.append((names[g], sb, quantiles[at]))
            return sorted(out)
