"""Data quality across a batch: which processes rejected more than 1 % of what they read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowdeck.batches import DQ_WARNING_RATE
from flowdeck.store.base import RunQuery

if TYPE_CHECKING:
    from flowdeck.runs import RunRecord
    from flowdeck.store.base import BatchRow, Store


def is_dq_warning(run: RunRecord) -> bool:
    """The rule the batch aggregates count (``dq_warning_processes``): DQ errors above 1 %
    of the rows read; DQ errors with nothing read count too."""
    return (run.dq_errors or 0) > DQ_WARNING_RATE * (run.rows_read or 0)


def dq_warning_runs(
    store: Store, batch: BatchRow, page: int, page_size: int
) -> tuple[int, list[RunRecord]]:
    """(how many processes of the batch are DQ warnings, one page of them, worst first)."""
    total = batch.dq_warning_processes
    offset = (page - 1) * page_size
    wanted = min(page_size, total - offset)
    if wanted <= 0:
        return total, []
    query = RunQuery(
        project=batch.project,
        batch_id=batch.batch_id,
        sort="dq_error_rate",
        order="desc",
        limit=wanted,
        offset=offset,
    )
    _, runs = store.list_batch_runs(query)
    if len(runs) == wanted and all(is_dq_warning(r) for r in runs):
        return total, runs
    # Some warnings have no rate (errors with no rows read) and sort after every rate:
    # list the whole batch in the same order and keep the warnings.
    _, every = store.list_batch_runs(
        RunQuery(
            project=batch.project,
            batch_id=batch.batch_id,
            sort="dq_error_rate",
            order="desc",
            limit=None,
        )
    )
    warnings = [r for r in every if is_dq_warning(r)]
    return len(warnings), warnings[offset : offset + page_size]
