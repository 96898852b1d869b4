"""Where incidents are kept (schema version 7), on either backend.

Writes run in the store's write transaction, so callers hand them to the writer thread
(``Writer.run_call``). :meth:`IncidentStore.advance` reads the open incidents and writes what
the detector made of them in one transaction, holding the store's write lock (an advisory
lock on PostgreSQL): two replicas detecting at once cannot both open the same incident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson

from flowdeck.errors import NotFound
from flowdeck.incidents.model import CLOSED, OPEN, Incident, TimelineEntry
from flowdeck.store.sql import Cursor, SqlStore

T = TypeVar("T")

_FIELDS: Final = (
    "id",
    "project",
    "pipeline",
    "kind",
    "subject",
    "stage",
    "slo",
    "severity",
    "state",
    "started_at",
    "opened_at",
    "closed_at",
    "recovering_since",
    "updated_at",
    "title",
    "reading",
    "summary",
    "impact",
    "cause",
    "action",
    "bottleneck",
    "value",
    "peak",
    "peak_at",
    "numbers",
    "timeline",
)
_COLUMNS: Final = ", ".join(_FIELDS)
_JSON: Final = frozenset({"numbers", "timeline"})
MAX_LIST: Final = 1000


def _json(value: Any) -> Any:
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _row(values: Sequence[Any]) -> Incident:
    r = dict(zip(_FIELDS, values, strict=True))
    timeline = tuple(TimelineEntry.parse(e) for e in _json(r["timeline"]))
    return Incident(
        id=r["id"],
        project=r["project"],
        pipeline=r["pipeline"],
        kind=r["kind"],
        subject=r["subject"],
        stage=r["stage"],
        slo=r["slo"],
        severity=r["severity"],
        state=r["state"],
        started_at=r["started_at"].astimezone(UTC),
        opened_at=r["opened_at"].astimezone(UTC),
        closed_at=_utc(r["closed_at"]),
        recovering_since=_utc(r["recovering_since"]),
        updated_at=r["updated_at"].astimezone(UTC),
        title=r["title"],
        reading=r["reading"],
        summary=r["summary"],
        impact=r["impact"],
        cause=r["cause"],
        action=r["action"],
        bottleneck=r["bottleneck"],
        value=None if r["value"] is None else float(r["value"]),
        peak=None if r["peak"] is None else float(r["peak"]),
        peak_at=_utc(r["peak_at"]),
        numbers=_json(r["numbers"]),
        timeline=timeline,
    )


def _params(inc: Incident) -> dict[str, Any]:
    params = {name: getattr(inc, name) for name in _FIELDS}
    params["numbers"] = orjson.dumps(dict(inc.numbers)).decode()
    params["timeline"] = orjson.dumps([e.out() for e in inc.timeline]).decode()
    return params


class IncidentStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query.replace("{json}", self.store.types["json"]), params)

    # -- reads ---------------------------------------------------------------------------
    def list_incidents(
        self,
        state: str = "all",
        *,
        project: str | None = None,
        pipeline: str | None = None,
        kind: str | None = None,
        limit: int = 200,
    ) -> list[Incident]:
        """Newest first (by when they opened). ``state`` is open, closed or all."""
        where = []
        params: dict[str, Any] = {"limit": min(limit, MAX_LIST)}
        if state in (OPEN, CLOSED):
            where.append("state = :state")
            params["state"] = state
        for name, value in (("project", project), ("pipeline", pipeline), ("kind", kind)):
            if value is not None:
                where.append(f"{name} = :{name}")
                params[name] = value
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self.store.reader() as cur:
            self._q(
                cur,
                f"SELECT {_COLUMNS} FROM incidents {clause}"
                "ORDER BY opened_at DESC, id LIMIT :limit",
                params,
            )
            return [_row(r) for r in cur.fetchall()]

    def get_incident(self, incident_id: str) -> Incident:
        """NotFound for an unknown id."""
        with self.store.reader() as cur:
            self._q(cur, f"SELECT {_COLUMNS} FROM incidents WHERE id = :id", {"id": incident_id})
            rows = cur.fetchall()
        if not rows:
            raise NotFound("incident", incident_id)
        return _row(rows[0])

    def recent(self, since: datetime) -> list[Incident]:
        """Open incidents and those closed since ``since`` (what the alert engine sees)."""
        with self.store.reader() as cur:
            self._q(
                cur,
                f"SELECT {_COLUMNS} FROM incidents WHERE state = :open OR closed_at >= :since "
                "ORDER BY opened_at, id",
                {"open": OPEN, "since": since},
            )
            return [_row(r) for r in cur.fetchall()]

    def open_incidents(self) -> list[Incident]:
        """Every open incident, oldest first."""
        with self.store.reader() as cur:
            return self._open(cur)

    def _open(self, cur: Cursor) -> list[Incident]:
        self._q(
            cur,
            f"SELECT {_COLUMNS} FROM incidents WHERE state = :open ORDER BY opened_at, id",
            {"open": OPEN},
        )
        return [_row(r) for r in cur.fetchall()]

    # -- writes (on the writer thread) ---------------------------------------------------
    def advance(self, decide: Callable[[list[Incident]], tuple[T, Sequence[Incident]]]) -> T:
        """In one transaction under the write lock: read the open incidents, let ``decide``
        say what becomes of them (its answer, and the incidents to write: new ones are
        added, known ones replaced), write those, and return the answer."""
        with self.store.write_transaction() as cur:
            self.store.lock_writes(cur)
            answer, changed = decide(self._open(cur))
            self._write(cur, changed)
        return answer

    def save(self, incidents: Sequence[Incident]) -> None:
        """Add or replace these incidents."""
        with self.store.write_transaction() as cur:
            self._write(cur, incidents)

    def _write(self, cur: Cursor, incidents: Sequence[Incident]) -> None:
        for inc in incidents:
            self._q(cur, _UPSERT, _params(inc))


_UPSERT: Final = (
    f"INSERT INTO incidents ({_COLUMNS}) VALUES ("
    + ", ".join(f"CAST(:{n} AS {{json}})" if n in _JSON else f":{n}" for n in _FIELDS)
    + ") ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{n} = EXCLUDED.{n}" for n in _FIELDS if n != "id")
)
