"""Where review samples and sampling settings are kept (schema version 8), on either backend.

Writes run in the store's write transaction, so callers hand them to the writer thread
(``Writer.run_call``), as dashboards and metric definitions do; reads use the store's
readers. Driver errors arrive as StoreUnavailable (``SqlStore._q``); a decision on an unknown
sample is NotFound, a second decision Conflict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import orjson

from flowdeck.errors import Conflict, NotFound
from flowdeck.review.model import DecisionIn, Sample, SampleFilter, SampleIn
from flowdeck.store.sql import Cursor, SqlStore

_COLUMNS: Final = (
    "id, project, pipeline, event_id, signal, record, context, sampled_at, received_at, "
    "status, note, reviewer, decided_at"
)
MAX_EXPORT: Final = 100_000


def _doc(value: Any) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        value = orjson.loads(value)
    return dict(value)


def _row(v: Sequence[Any]) -> Sample:
    return Sample(
        v[0], v[1], v[2], v[3], v[4], _doc(v[5]), _doc(v[6]), v[7], v[8], v[9], v[10], v[11], v[12]
    )


def _where(f: SampleFilter) -> tuple[str, dict[str, Any]]:
    """The WHERE clause of a filter (fixed text; the values go as parameters)."""
    parts: list[str] = []
    params: dict[str, Any] = {}
    for column in ("status", "project", "pipeline", "signal"):
        value = getattr(f, column)
        if value is not None:
            parts.append(f"{column} = :{column}")
            params[column] = value
    if f.since is not None:
        parts.append("sampled_at >= :since")
        params["since"] = f.since
    if f.until is not None:
        parts.append("sampled_at < :until")
        params["until"] = f.until
    return (" WHERE " + " AND ".join(parts) if parts else ""), params


class ReviewStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query.replace("{json}", self.store.types["json"]), params)

    # -- reads ---------------------------------------------------------------------------
    def get_sample(self, sample_id: str) -> Sample:
        with self.store.reader() as cur:
            return self._get(cur, sample_id)

    def _get(self, cur: Cursor, sample_id: str) -> Sample:
        self._q(cur, f"SELECT {_COLUMNS} FROM review_samples WHERE id = :id", {"id": sample_id})
        rows = cur.fetchall()
        if not rows:
            raise NotFound("review sample", sample_id)
        return _row(rows[0])

    def list_samples(
        self, f: SampleFilter, *, offset: int = 0, limit: int = 50, oldest_first: bool = False
    ) -> tuple[int, list[Sample]]:
        """The total matching ``f`` and one page of them, newest sampled first (or oldest:
        the order a queue is worked through)."""
        where, params = _where(f)
        order = "ASC" if oldest_first else "DESC"
        with self.store.reader() as cur:
            self._q(cur, f"SELECT count(*) FROM review_samples{where}", params)
            total = int(cur.fetchall()[0][0])
            self._q(
                cur,
                f"SELECT {_COLUMNS} FROM review_samples{where} "
                f"ORDER BY sampled_at {order}, event_id {order}, id {order} "
                "LIMIT :limit OFFSET :offset",
                {**params, "limit": limit, "offset": offset},
            )
            return total, [_row(r) for r in cur.fetchall()]

    def count_by_status(self, f: SampleFilter) -> dict[str, int]:
        where, params = _where(f.without_status())
        with self.store.reader() as cur:
            self._q(
                cur, f"SELECT status, count(*) FROM review_samples{where} GROUP BY status", params
            )
            found = {r[0]: int(r[1]) for r in cur.fetchall()}
        return {s: found.get(s, 0) for s in ("pending", "approved", "rejected")}

    def count_by_signal(self, f: SampleFilter) -> dict[str, dict[str, int]]:
        """Counts by status of each signal, within the filter (but for its status)."""
        where, params = _where(f.without_status())
        out: dict[str, dict[str, int]] = {}
        with self.store.reader() as cur:
            self._q(
                cur,
                f"SELECT signal, status, count(*) FROM review_samples{where} "
                "GROUP BY signal, status ORDER BY signal",
                params,
            )
            for signal, status, n in cur.fetchall():
                counts = out.setdefault(signal, {"pending": 0, "approved": 0, "rejected": 0})
                counts[status] = int(n)
        return out

    def outcome_buckets(
        self, f: SampleFilter, since: datetime, until: datetime, width_s: int
    ) -> list[tuple[int, int, int]]:
        """(bucket start in seconds since 1970, approved, rejected) for each bucket of
        ``width_s`` seconds with decisions made in [since, until]."""
        where, params = _where(f.without_status())
        clause = (where + " AND " if where else " WHERE ") + (
            "decided_at IS NOT NULL AND decided_at >= :d_since AND decided_at <= :d_until"
        )
        with self.store.reader() as cur:
            self._q(
                cur,
                "SELECT CAST(floor(extract(epoch FROM decided_at) / :w) AS BIGINT) AS b, "
                f"status, count(*) FROM review_samples{clause} GROUP BY b, status ORDER BY b",
                {**params, "w": width_s, "d_since": since, "d_until": until},
            )
            buckets: dict[int, list[int]] = {}
            for b, status, n in cur.fetchall():
                counts = buckets.setdefault(int(b) * width_s, [0, 0])
                counts[0 if status == "approved" else 1] += int(n)
        return [(t, a, r) for t, (a, r) in sorted(buckets.items())]

    def export_samples(self, f: SampleFilter) -> list[Sample]:
        """Every sample matching ``f`` (at most MAX_EXPORT), oldest first."""
        return self.list_samples(f, limit=MAX_EXPORT, oldest_first=True)[1]

    def list_pipelines(self) -> list[tuple[str, str]]:
        """(project, pipeline) of every pipeline with samples or a setting."""
        with self.store.reader() as cur:
            self._q(
                cur,
                "SELECT DISTINCT project, pipeline FROM review_samples UNION "
                "SELECT project, pipeline FROM review_settings ORDER BY project, pipeline",
            )
            return [(r[0], r[1]) for r in cur.fetchall()]

    def list_signals(self) -> list[str]:
        with self.store.reader() as cur:
            self._q(cur, "SELECT DISTINCT signal FROM review_samples ORDER BY signal")
            return [r[0] for r in cur.fetchall()]

    def get_setting(self, project: str, pipeline: str) -> tuple[float, datetime] | None:
        with self.store.reader() as cur:
            self._q(
                cur,
                "SELECT rate, updated_at FROM review_settings "
                "WHERE project = :project AND pipeline = :pipeline",
                {"project": project, "pipeline": pipeline},
            )
            rows = cur.fetchall()
        return (float(rows[0][0]), rows[0][1]) if rows else None

    def list_settings(self) -> list[tuple[str, str, float, datetime]]:
        with self.store.reader() as cur:
            self._q(
                cur,
                "SELECT project, pipeline, rate, updated_at FROM review_settings "
                "ORDER BY project, pipeline",
            )
            return [(r[0], r[1], float(r[2]), r[3]) for r in cur.fetchall()]

    # -- writes (on the writer thread) ---------------------------------------------------
    def add_samples(self, samples: Sequence[SampleIn], now: datetime) -> list[SampleIn]:
        """Store the samples not stored yet, in one transaction; returns those (a sample
        whose event was sent before is left as it is: re-posts are no-ops)."""
        added: list[SampleIn] = []
        with self.store.write_transaction() as cur:
            for sample in samples:
                self._q(
                    cur,
                    f"INSERT INTO review_samples ({_COLUMNS}) VALUES (:id, :project, :pipeline, "
                    ":event_id, :signal, CAST(:record AS {json}), CAST(:context AS {json}), "
                    ":sampled_at, :now, 'pending', NULL, NULL, NULL) "
                    "ON CONFLICT (id) DO NOTHING RETURNING id",
                    {
                        "id": sample.id,
                        "project": sample.project,
                        "pipeline": sample.pipeline,
                        "event_id": sample.event_id,
                        "signal": sample.signal,
                        "record": orjson.dumps(sample.record).decode(),
                        "context": orjson.dumps(sample.context).decode(),
                        "sampled_at": sample.sampled_at or now,
                        "now": now,
                    },
                )
                if cur.fetchall():
                    added.append(sample)
        return added

    def remove_samples(self, ids: Sequence[str]) -> None:
        """Take back samples just added (their metric could not be written)."""
        with self.store.write_transaction() as cur:
            for sample_id in ids:
                self._q(cur, "DELETE FROM review_samples WHERE id = :id", {"id": sample_id})

    def decide(self, sample_id: str, decision: DecisionIn, now: datetime) -> Sample:
        """Record a pending sample's outcome. NotFound for an unknown id; Conflict when it
        was decided already (a decision is final: the outcome metric counts it once)."""
        with self.store.write_transaction() as cur:
            self._q(
                cur,
                "UPDATE review_samples SET status = :outcome, note = :note, "
                "reviewer = :reviewer, decided_at = :now "
                "WHERE id = :id AND status = 'pending' RETURNING id",
                {
                    "id": sample_id,
                    "outcome": decision.outcome,
                    "note": decision.note or None,
                    "reviewer": decision.reviewer or None,
                    "now": now,
                },
            )
            changed = bool(cur.fetchall())
            sample = self._get(cur, sample_id)
        if not changed:
            who = f" by {sample.reviewer}" if sample.reviewer else ""
            when = sample.decided_at.isoformat() if sample.decided_at else "?"
            raise Conflict(
                f"review sample {sample_id!r} was already {sample.status}{who} at {when}; "
                "a decision is final"
            )
        return sample

    def undecide(self, sample_id: str) -> None:
        """Put a sample back in the queue (its outcome metric could not be written)."""
        with self.store.write_transaction() as cur:
            self._q(
                cur,
                "UPDATE review_samples SET status = 'pending', note = NULL, reviewer = NULL, "
                "decided_at = NULL WHERE id = :id",
                {"id": sample_id},
            )

    def put_setting(self, project: str, pipeline: str, rate: float, now: datetime) -> None:
        with self.store.write_transaction() as cur:
            self._q(
                cur,
                "INSERT INTO review_settings (project, pipeline, rate, updated_at) "
                "VALUES (:project, :pipeline, :rate, :now) ON CONFLICT (project, pipeline) "
                "DO UPDATE SET rate = excluded.rate, updated_at = excluded.updated_at",
                {"project": project, "pipeline": pipeline, "rate": rate, "now": now},
            )
