"""Where dashboards are kept (schema version 4), on either backend.

Writes run in the store's write transaction, so callers hand them to the writer thread
(``Writer.run_call``), as the metric definitions do: DuckDB has one writer, and a dashboard
save is rare next to run ingest. Reads use the store's readers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from flowdeck.errors import Conflict, NotFound
from flowdeck.store.sql import Cursor, SqlStore

_COLUMNS = "id, title, spec, version, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class DashboardRow:
    id: str
    title: str
    spec: Mapping[str, Any]  # DashboardIn.spec(): title, description, time_range, …
    version: int
    created_at: datetime
    updated_at: datetime

    def out(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.spec,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def new_dashboard_id() -> str:
    return uuid.uuid4().hex[:12]


def _row(values: Any) -> DashboardRow:
    spec = values[2]
    if isinstance(spec, str | bytes):
        spec = orjson.loads(spec)
    return DashboardRow(values[0], values[1], spec, int(values[3]), values[4], values[5])


class DashboardStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query.replace("{json}", self.store.types["json"]), params)

    # -- reads ---------------------------------------------------------------------------
    def list_dashboards(self) -> list[DashboardRow]:
        """Every dashboard, by title."""
        with self.store.reader() as cur:
            self._q(cur, f"SELECT {_COLUMNS} FROM dashboards ORDER BY lower(title), id")
            return [_row(r) for r in cur.fetchall()]

    def get_dashboard(self, dashboard_id: str) -> DashboardRow:
        with self.store.reader() as cur:
            return self._get(cur, dashboard_id)

    def _get(self, cur: Cursor, dashboard_id: str) -> DashboardRow:
        self._q(cur, f"SELECT {_COLUMNS} FROM dashboards WHERE id = :id", {"id": dashboard_id})
        rows = cur.fetchall()
        if not rows:
            raise NotFound("dashboard", dashboard_id)
        return _row(rows[0])

    # -- writes (on the writer thread) ---------------------------------------------------
    def create_dashboard(
        self, spec: Mapping[str, Any], now: datetime, dashboard_id: str | None = None
    ) -> DashboardRow:
        with self.store.write_transaction() as cur:
            return self._insert(cur, dashboard_id or new_dashboard_id(), spec, now)

    def _insert(
        self, cur: Cursor, dashboard_id: str, spec: Mapping[str, Any], now: datetime
    ) -> DashboardRow:
        self._q(
            cur,
            f"INSERT INTO dashboards ({_COLUMNS}) "
            "VALUES (:id, :title, CAST(:spec AS {json}), 1, :now, :now)",
            {"id": dashboard_id, "title": spec["title"], "spec": _dump(spec), "now": now},
        )
        return DashboardRow(dashboard_id, spec["title"], spec, 1, now, now)

    def update_dashboard(
        self,
        dashboard_id: str,
        spec: Mapping[str, Any],
        now: datetime,
        expected_version: int | None = None,
    ) -> DashboardRow:
        """Replace a dashboard's definition. With ``expected_version``, Conflict when the
        stored one is another (someone saved in between); NotFound for an unknown id."""
        with self.store.write_transaction() as cur:
            current = self._get(cur, dashboard_id)
            if expected_version is not None and expected_version != current.version:
                raise Conflict(
                    f"dashboard {dashboard_id!r} is at version {current.version}, not "
                    f"{expected_version}: it was saved meanwhile; reload it and edit again"
                )
            version = current.version + 1
            self._q(
                cur,
                "UPDATE dashboards SET title = :title, spec = CAST(:spec AS {json}), "
                "version = :version, updated_at = :now WHERE id = :id",
                {
                    "id": dashboard_id,
                    "title": spec["title"],
                    "spec": _dump(spec),
                    "version": version,
                    "now": now,
                },
            )
        return DashboardRow(dashboard_id, spec["title"], spec, version, current.created_at, now)

    def delete_dashboard(self, dashboard_id: str) -> None:
        with self.store.write_transaction() as cur:
            self._get(cur, dashboard_id)
            self._q(cur, "DELETE FROM dashboards WHERE id = :id", {"id": dashboard_id})

    def create_templates(
        self, templates: Iterable[tuple[str, str, Mapping[str, Any]]], now: datetime
    ) -> list[str]:
        """Create each (name, dashboard id, spec) never created before, in one transaction;
        returns the names created. A template is remembered once created, so one the user
        deleted stays deleted, and two replicas starting together create it once (the
        second waits on the first's row and then finds it)."""
        created = []
        with self.store.write_transaction() as cur:
            for name, dashboard_id, spec in templates:
                self._q(
                    cur,
                    "INSERT INTO dashboard_templates (name, dashboard_id, created_at) "
                    "VALUES (:name, :id, :now) ON CONFLICT (name) DO NOTHING RETURNING name",
                    {"name": name, "id": dashboard_id, "now": now},
                )
                if not cur.fetchall():
                    continue
                self._q(cur, "SELECT 1 FROM dashboards WHERE id = :id", {"id": dashboard_id})
                if not cur.fetchall():
                    self._insert(cur, dashboard_id, spec, now)
                    created.append(name)
        return created


def _dump(spec: Mapping[str, Any]) -> str:
    return orjson.dumps(spec).decode()
