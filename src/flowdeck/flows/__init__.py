"""Flows: a pipeline's declared stages (ingest → validate → enrich → store …), the metric
points its stages report (``flow.*``), and the live view computed from them.

``model.py`` says what a flow declaration is and checks it, ``store.py`` keeps declarations
on either backend, ``live.py`` turns the last minute of metric points into rates, queues,
latency percentiles and traffic lights.
"""

from flowdeck.flows.model import FlowSpec, Limit, StageSpec, Thresholds
from flowdeck.flows.store import FlowStore

__all__ = ["FlowSpec", "FlowStore", "Limit", "StageSpec", "Thresholds"]
