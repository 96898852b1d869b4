"""GET /metrics: flowdeck's own health and each pipeline's state, for Prometheus.

Labels stay few and bounded: pipeline gauges carry (project, pipeline, env) and a state set
carries ``status``; no run or batch ids, whose number grows without end.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from flowdeck import __version__
from flowdeck.api.services import Services, services
from flowdeck.errors import FlowdeckError
from flowdeck.models import Status
from flowdeck.prometheus import CONTENT_TYPE, Family, exposition

router = APIRouter(tags=["metrics"])


def _server_families(svc: Services) -> list[Family]:
    stats = svc.writer.stats
    info = Family("flowdeck_build_info", "flowdeck's version (always 1)")
    info.add(1, version=__version__, database=svc.store.backend)
    runs = Family(
        "flowdeck_runs_written_total",
        "runs committed by the writer (rate() = ingest rate)",
        "counter",
    )
    runs.add(stats.runs_written)
    requests = Family(
        "flowdeck_write_requests_total", "ingest requests committed by the writer", "counter"
    )
    requests.add(stats.requests)
    commits = Family("flowdeck_commits_total", "group commits of the writer", "counter")
    commits.add(stats.commits)
    latency = Family("flowdeck_last_commit_seconds", "how long the writer's last commit took")
    latency.add(stats.last_commit_seconds)
    queue = Family("flowdeck_writer_queue_depth", "ingest requests waiting for the writer")
    queue.add(svc.writer.queue_depth)
    kept = Family(
        "flowdeck_pipeline_states_kept_back",
        "pipeline states committed with their runs but not yet written to their table",
    )
    kept.add(svc.store.pipelines_kept_back())
    clients = Family("flowdeck_stream_clients", "live clients of the change stream")
    clients.add(svc.bus.subscribers)
    families = [info, runs, requests, commits, latency, queue, kept, clients]
    if svc.metric_cells is not None:
        stale = Family(
            "flowdeck_metric_percentiles_stale",
            "metrics and levels whose kept percentiles wait to be recomputed (at the last look)",
        )
        stale.add(svc.metric_cells.stale_metrics)
        done = Family(
            "flowdeck_metric_percentile_buckets_total",
            "buckets whose kept percentiles were recomputed",
            "counter",
        )
        done.add(svc.metric_cells.buckets_done)
        passes = Family(
            "flowdeck_metric_percentile_passes_total",
            "refreshes of the kept percentiles that went through every stale bucket",
            "counter",
        )
        passes.add(svc.metric_cells.passes)
        families += [stale, done, passes]
    return families


def _notifier_families(svc: Services) -> list[Family]:
    if svc.alerts is None:
        return []
    failures = Family(
        "flowdeck_notifier_failures",
        "failed delivery attempts of a channel since its last successful one",
    )
    failed = Family("flowdeck_notifications_failed", "notifications a channel gave up delivering")
    pending = Family("flowdeck_notifications_pending", "notifications waiting for delivery")
    for channel, health in sorted(svc.alerts.db.channel_health().items()):
        failures.add(health.get("failures_since_success", 0), channel=channel)
        failed.add(health.get("failed", 0), channel=channel)
        pending.add(health.get("pending", 0), channel=channel)
    return [failures, failed, pending]


def _pipeline_families(svc: Services) -> list[Family]:
    status = Family(
        "flowdeck_pipeline_last_run_status",
        "the status of the pipeline's last run (1 for the current one, a state set)",
    )
    success = Family(
        "flowdeck_pipeline_last_success_timestamp_seconds",
        "when the pipeline's last successful run ended (Unix time)",
    )
    failures = Family(
        "flowdeck_pipeline_consecutive_failures", "failed runs since the last success"
    )
    duration = Family(
        "flowdeck_pipeline_last_run_duration_seconds", "duration of the pipeline's last run"
    )
    written = Family(
        "flowdeck_pipeline_last_run_rows_written", "rows written by the pipeline's last run"
    )
    runs = Family("flowdeck_pipeline_runs", "runs of the pipeline flowdeck keeps")
    states = svc.store.list_pipelines()
    # (gone between the two reads: left out)
    lasts = svc.store.get_runs([s.last_run_id for s in states])
    for state in states:
        key = {"project": state.project, "pipeline": state.pipeline, "env": state.env}
        for name in Status:
            status.add(1 if state.last_status == name else 0, **key, status=name.value)
        if state.last_success_at is not None:
            success.add(state.last_success_at.timestamp(), **key)
        failures.add(state.consecutive_failures, **key)
        runs.add(state.runs, **key)
        last = lasts.get(state.last_run_id)
        if last is None:
            continue
        if last.duration_s is not None:
            duration.add(last.duration_s, **key)
        if last.rows_written is not None:
            written.add(last.rows_written, **key)
    return [status, success, failures, duration, written, runs]


@router.get(
    "/metrics",
    summary="Prometheus metrics: flowdeck's health and each pipeline's state",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}},
)
def metrics(svc: Annotated[Services, Depends(services)]) -> Response:
    started = time.perf_counter()
    families = _server_families(svc)
    up = Family("flowdeck_database_up", "1 when the database answered this scrape")
    try:
        families += _pipeline_families(svc)
        families += _notifier_families(svc)
        up.add(1)
    except FlowdeckError:
        up.add(0)  # the server's own figures are still worth a scrape
    took = Family("flowdeck_scrape_seconds", "time taken to gather these metrics")
    took.add(round(time.perf_counter() - started, 6))
    return Response(exposition([*families, up, took]), media_type=CONTENT_TYPE)
