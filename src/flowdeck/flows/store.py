"""Where flow declarations are kept (schema version 5), on either backend.

Writes run in the store's write transaction, so callers hand them to the writer thread
(``Writer.run_call``), as the dashboards do. Reads use the store's readers; other parts
(incidents, review) read declarations through :meth:`FlowStore.get` and :meth:`FlowStore.list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from flowdeck.errors import NotFound
from flowdeck.flows.model import FlowSpec
from flowdeck.store.sql import Cursor, SqlStore

_COLUMNS = "project, pipeline, title, spec, created_at, updated_at"


def _row(values: Any) -> FlowSpec:
    spec = values[3]
    if isinstance(spec, str | bytes):
        spec = orjson.loads(spec)
    return FlowSpec.from_json(values[0], values[1], spec, values[4], values[5])


class FlowStore:
    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def _q(self, cur: Cursor, query: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.store._q(cur, query.replace("{json}", self.store.types["json"]), params)

    # -- reads ---------------------------------------------------------------------------
    def get(self, project: str, pipeline: str) -> FlowSpec | None:
        """The flow declared for (project, pipeline), or None."""
        with self.store.reader() as cur:
            return self._get(cur, project, pipeline)

    def _get(self, cur: Cursor, project: str, pipeline: str) -> FlowSpec | None:
        self._q(
            cur,
            f"SELECT {_COLUMNS} FROM flows WHERE project = :project AND pipeline = :pipeline",
            {"project": project, "pipeline": pipeline},
        )
        rows = cur.fetchall()
        return _row(rows[0]) if rows else None

    def list(self, project: str | None = None) -> list[FlowSpec]:
        """Every flow (of ``project`` when given), by project and pipeline."""
        where = "" if project is None else "WHERE project = :project"
        with self.store.reader() as cur:
            self._q(
                cur,
                f"SELECT {_COLUMNS} FROM flows {where} ORDER BY project, pipeline",
                {} if project is None else {"project": project},
            )
            return [_row(r) for r in cur.fetchall()]

    # -- writes (on the writer thread) ---------------------------------------------------
    def put(self, flow: FlowSpec, now: datetime) -> tuple[FlowSpec, bool]:
        """Declare a flow or replace its declaration; the stored flow and True when new."""
        params = {
            "project": flow.project,
            "pipeline": flow.pipeline,
            "title": flow.title,
            "spec": orjson.dumps(flow.spec_json()).decode(),
            "now": now,
        }
        with self.store.write_transaction() as cur:
            self.store.lock_writes(cur)  # two replicas declaring one new flow: one inserts
            current = self._get(cur, flow.project, flow.pipeline)
            if current is None:
                self._q(
                    cur,
                    f"INSERT INTO flows ({_COLUMNS}) VALUES "
                    "(:project, :pipeline, :title, CAST(:spec AS {json}), :now, :now)",
                    params,
                )
                created_at = now
            else:
                self._q(
                    cur,
                    "UPDATE flows SET title = :title, spec = CAST(:spec AS {json}), "
                    "updated_at = :now WHERE project = :project AND pipeline = :pipeline",
                    params,
                )
                created_at = current.created_at or now
        stored = FlowSpec.from_json(
            flow.project, flow.pipeline, flow.spec_json(), created_at=created_at, updated_at=now
        )
        return stored, current is None

    def delete(self, project: str, pipeline: str) -> None:
        """Forget a declaration (its metric points stay); NotFound when there is none."""
        with self.store.write_transaction() as cur:
            if self._get(cur, project, pipeline) is None:
                where = pipeline if project == "default" else f"{project}/{pipeline}"
                raise NotFound("flow", where)
            self._q(
                cur,
                "DELETE FROM flows WHERE project = :project AND pipeline = :pipeline",
                {"project": project, "pipeline": pipeline},
            )
