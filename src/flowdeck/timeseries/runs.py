"""Run-derived series: numbers of the stored runs, queryable like metric points.

Each run is one point at its ``sort_at`` (start, else creation) with the tags ``pipeline``,
``env``, ``status`` and its labels. ``runs.success_rate`` is 1 for a run that succeeded and 0
for one that failed (others have no value), so its ``avg`` is the success rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

# Metric name → the SQL of its value per run (fixed text: never built from a request).
RUN_METRICS: Final[Mapping[str, str]] = {
    "runs.count": "1",
    "runs.duration_s": "duration_s",
    "runs.rows_read": "rows_read",
    "runs.rows_written": "rows_written",
    "runs.rows_invalid": "rows_invalid",
    "runs.dq_errors": "dq_errors",
    "runs.success_rate": "CASE WHEN status = 'SUCCESS' THEN 1 WHEN status = 'FAILED' THEN 0 END",
}
RUN_TAGS: Final = ("pipeline", "env", "status")
