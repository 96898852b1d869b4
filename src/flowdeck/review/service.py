"""The review's writes and the sampling rate in use, shared by the API and the pages.

A sample's or a decision's row and its metric point (``review.samples`` when it arrives,
``review.outcomes`` when it is decided) are written by one call on the writer thread: first
the row, then the point through the metric store's own path (rollups included). Should the
point fail, the row is taken back before the error is raised, so a caller never sees a
decision that the metric does not count (nothing half-written).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from flowdeck.errors import InvalidInput, StoreUnavailable
from flowdeck.flows.store import FlowStore
from flowdeck.ingest.writer import Writer
from flowdeck.review.model import DecisionIn, RateSetting, Sample, SampleIn
from flowdeck.review.sampling import DEFAULT_RATE
from flowdeck.review.store import ReviewStore
from flowdeck.store.sql import SqlStore
from flowdeck.timeseries.points import PointBatch, SeriesKey

log = logging.getLogger("flowdeck.review")

OUTCOMES_METRIC: Final = "review.outcomes"
SAMPLES_METRIC: Final = "review.samples"

# (project, pipeline) → the flow's review_rate, or None when the pipeline declares no flow.
FlowRate = Callable[[str, str], float | None]


def flow_rates(store: SqlStore) -> FlowRate:
    """The review_rate of declared flows (flowdeck.flows)."""
    flows = FlowStore(store)

    def rate(project: str, pipeline: str) -> float | None:
        spec = flows.get(project, pipeline)
        return float(spec.review_rate) if spec is not None else None

    return rate


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(microseconds=1)


def point_batch(points: Sequence[tuple[str, str, dict[str, str], datetime]]) -> PointBatch:
    """Counter increments of 1: (project, metric, tags, time) each."""
    batch = PointBatch()
    index: dict[SeriesKey, int] = {}
    positions: list[int] = []
    for project, name, tags, _at in points:
        key = SeriesKey(project, name, tuple(sorted(tags.items())))
        if key not in index:
            index[key] = len(batch.series)
            batch.series.append(key)
            batch.where.append(f"tags of {name} (pipeline {tags.get('pipeline')!r})")
        positions.append(index[key])
    batch.series_index = pa.array(positions, pa.int32())
    batch.times_us = pa.array([_micros(p[3]) for p in points], pa.int64())
    batch.values = pa.array([1.0] * len(points), pa.float64())
    return batch


@dataclass
class ReviewService:
    store: ReviewStore
    writer: Writer
    clock: Callable[[], datetime]
    max_series: int
    bus: Any = None  # flowdeck.events.EventBus: told which metrics got points
    flow_rate: FlowRate | None = None

    # -- sampling rate ------------------------------------------------------------------
    def rate_of(self, project: str, pipeline: str) -> RateSetting:
        """The flow's review_rate when the pipeline declares a flow, else its review
        setting, else the default."""
        stored = self.store.get_setting(project, pipeline)
        setting, updated = (stored[0], stored[1]) if stored else (None, None)
        if self.flow_rate is not None:
            try:
                from_flow = self.flow_rate(project, pipeline)
            except Exception:  # the flows part must not take the review down with it
                log.exception("could not read the flow of %s/%s", project, pipeline)
                from_flow = None
            if from_flow is not None:
                return RateSetting(project, pipeline, from_flow, "flow", setting, updated)
        if setting is not None:
            return RateSetting(project, pipeline, setting, "setting", setting, updated)
        return RateSetting(project, pipeline, DEFAULT_RATE, "default", None, None)

    async def put_rate(self, project: str, pipeline: str, rate: float) -> RateSetting:
        now = self.clock()
        await self.writer.run_call(lambda: self.store.put_setting(project, pipeline, rate, now))
        return self.rate_of(project, pipeline)

    # -- samples and decisions ----------------------------------------------------------
    async def add_samples(self, samples: Sequence[SampleIn]) -> list[str]:
        """Store the new samples (re-posted ones are left alone) and count them in
        ``review.samples``; returns the ids of those added."""
        first: dict[str, SampleIn] = {}
        for sample in samples:
            first.setdefault(sample.id, sample)  # the same event twice: the first one counts
        unique = list(first.values())
        now = self.clock()

        def write() -> list[str]:
            added = self.store.add_samples(unique, now)
            if added:
                points = [
                    (
                        s.project,
                        SAMPLES_METRIC,
                        {"pipeline": s.pipeline, "signal": s.signal},
                        s.sampled_at or now,
                    )
                    for s in added
                ]
                self._write_points(points, lambda: self.store.remove_samples([s.id for s in added]))
            return [s.id for s in added]

        added = await self.writer.run_call(write)
        if added:
            self._announce(SAMPLES_METRIC)
        return added

    async def decide(self, sample_id: str, decision: DecisionIn) -> Sample:
        """Record the outcome and count it in ``review.outcomes``."""
        now = self.clock()

        def write() -> Sample:
            sample = self.store.decide(sample_id, decision, now)
            tags = {"pipeline": sample.pipeline, "signal": sample.signal, "outcome": sample.status}
            self._write_points(
                [(sample.project, OUTCOMES_METRIC, tags, now)],
                lambda: self.store.undecide(sample_id),
            )
            return sample

        sample = await self.writer.run_call(write)
        self._announce(OUTCOMES_METRIC)
        return sample

    def _write_points(
        self,
        points: Sequence[tuple[str, str, dict[str, str], datetime]],
        undo: Callable[[], None],
    ) -> None:
        """On the writer thread: the points, or ``undo`` and the error."""
        metrics = self.store.store
        try:
            problem = metrics.add_points([point_batch(points)], self.max_series, self.clock())[0]
        except Exception as exc:
            undo()
            if isinstance(exc, InvalidInput | StoreUnavailable):
                raise
            raise StoreUnavailable(f"review metric write failed: {exc}") from exc
        if problem is not None:
            undo()
            raise problem
        self.writer.stats.points_written += len(points)

    def _announce(self, name: str) -> None:
        if self.bus is not None:
            self.bus.publish_metrics((name,))


def review_service(
    store: Any, writer: Writer, bus: Any, clock: Callable[[], datetime], max_series: int
) -> ReviewService | None:
    """The review on ``store`` (None where the store keeps no tables of its own)."""
    if not isinstance(store, SqlStore):
        return None
    return ReviewService(
        ReviewStore(store), writer, clock, max_series, bus=bus, flow_rate=flow_rates(store)
    )
