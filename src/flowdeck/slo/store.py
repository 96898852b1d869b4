"""Where SLO definitions are kept (schema version 6), on either backend.

Writes run in the store's write transaction, so callers hand them to the writer thread
(``Writer.run_call``), as the dashboards do. Reads use the store's readers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson

from flowdeck.errors import NotFound
from flowdeck.slo.model import Slo, parse_slo
from flowdeck.store.sql import Cursor, SqlStore

_COLUMNS = "name, project, pipeline, spec, created_at, updated_at"


def _slo(values: Any) -> Slo:
    spec = values[3]
    if isinstance(spec, str | bytes):
        spec = orjson.loads(spec)
    # Stored specs were valid when saved; parsing again fills in defaults added since.
    return replace(parse_slo(spec), created_at=values[4], updated_at=values[5])


class SloStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query.replace("{json}", self.store.types["json"]), params)

    # -- reads ---------------------------------------------------------------------------
    def list_slos(self, project: str | None = None, pipeline: str | None = None) -> list[Slo]:
        """Every SLO (of a project, of a pipeline), by name."""
        where, params = [], {}
        if project is not None:
            where.append("project = :project")
            params["project"] = project
        if pipeline is not None:
            where.append("pipeline = :pipeline")
            params["pipeline"] = pipeline
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self.store.reader() as cur:
            self._q(cur, f"SELECT {_COLUMNS} FROM slos{clause} ORDER BY name", params)
            return [_slo(r) for r in cur.fetchall()]

    def get_slo(self, name: str) -> Slo:
        """Raises NotFound for an unknown name."""
        with self.store.reader() as cur:
            self._q(cur, f"SELECT {_COLUMNS} FROM slos WHERE name = :name", {"name": name})
            rows = cur.fetchall()
        if not rows:
            raise NotFound("SLO", name)
        return _slo(rows[0])

    # -- writes (on the writer thread) ---------------------------------------------------
    def put_slo(self, slo: Slo, now: datetime) -> tuple[Slo, bool]:
        """Create or replace an SLO; (the SLO as stored, True when it is new)."""
        params = {
            "name": slo.name,
            "project": slo.project,
            "pipeline": slo.pipeline,
            "spec": orjson.dumps(slo.spec()).decode(),
            "now": now,
        }
        with self.store.write_transaction() as cur:
            self._q(cur, "SELECT created_at FROM slos WHERE name = :name", {"name": slo.name})
            rows = cur.fetchall()
            if rows:
                self._q(
                    cur,
                    "UPDATE slos SET project = :project, pipeline = :pipeline, "
                    "spec = CAST(:spec AS {json}), updated_at = :now WHERE name = :name",
                    params,
                )
                return replace(slo, created_at=rows[0][0], updated_at=now), False
            self._q(
                cur,
                f"INSERT INTO slos ({_COLUMNS}) "
                "VALUES (:name, :project, :pipeline, CAST(:spec AS {json}), :now, :now)",
                params,
            )
        return replace(slo, created_at=now, updated_at=now), True

    def delete_slo(self, name: str) -> None:
        """Raises NotFound for an unknown name."""
        with self.store.write_transaction() as cur:
            self._q(cur, "SELECT 1 FROM slos WHERE name = :name", {"name": name})
            if not cur.fetchall():
                raise NotFound("SLO", name)
            self._q(cur, "DELETE FROM slos WHERE name = :name", {"name": name})
