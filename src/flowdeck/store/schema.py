"""Schema versions. Each migration is a list of statements; types are spelled through the
dialect's type names so both backends share one definition. Append, never edit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class OnlyOn:
    """A statement for one backend (``Store.backend``); the other skips it."""

    backend: str
    statement: str


MIGRATIONS: Final[dict[int, list[str | OnlyOn]]] = {
    1: [
        """CREATE TABLE runs (
            run_id {text} PRIMARY KEY,
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            batch_id {text} NOT NULL,
            env {text} NOT NULL,
            status {text} NOT NULL,
            started_at TIMESTAMPTZ,
            ended_at TIMESTAMPTZ,
            duration_s {double},
            rows_read BIGINT,
            rows_written BIGINT,
            rows_invalid BIGINT,
            rows_inserted BIGINT,
            rows_updated BIGINT,
            dq_errors BIGINT,
            read_throughput {double},
            write_throughput {double},
            custom_stats {json} NOT NULL,
            labels {json} NOT NULL,
            error_message {text},
            derived {text} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            sort_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX runs_batch ON runs (project, batch_id)",
        "CREATE INDEX runs_pipeline ON runs (project, pipeline, env, sort_at)",
        """CREATE TABLE batches (
            project {text} NOT NULL,
            batch_id {text} NOT NULL,
            env {text} NOT NULL,
            started_at TIMESTAMPTZ,
            ended_at TIMESTAMPTZ,
            sort_at TIMESTAMPTZ NOT NULL,
            total BIGINT NOT NULL,
            succeeded BIGINT NOT NULL,
            failed BIGINT NOT NULL,
            running BIGINT NOT NULL,
            pending BIGINT NOT NULL,
            rows_read BIGINT NOT NULL,
            rows_written BIGINT NOT NULL,
            rows_invalid BIGINT NOT NULL,
            rows_inserted BIGINT NOT NULL,
            rows_updated BIGINT NOT NULL,
            dq_errors BIGINT NOT NULL,
            dq_warning_processes BIGINT NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, batch_id)
        )""",
        "CREATE INDEX batches_sort ON batches (sort_at)",
        """CREATE TABLE pipelines (
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            env {text} NOT NULL,
            runs BIGINT NOT NULL,
            last_run_id {text} NOT NULL,
            last_run_at TIMESTAMPTZ NOT NULL,
            last_status {text} NOT NULL,
            last_success_run_id {text},
            last_success_t TIMESTAMPTZ,
            last_success_at TIMESTAMPTZ,
            consecutive_failures BIGINT NOT NULL,
            PRIMARY KEY (project, pipeline, env)
        )""",
    ],
    # Alerting (flowdeck.alerts.store): rules and channels made through the API, the current
    # state of each alert, its history, silences, and every notification with its attempts.
    2: [
        """CREATE TABLE alert_rules (
            name {text} PRIMARY KEY,
            spec {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE alert_channels (
            name {text} PRIMARY KEY,
            spec {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE alerts (
            fingerprint {text} PRIMARY KEY,
            rule {text} NOT NULL,
            kind {text} NOT NULL,
            severity {text} NOT NULL,
            state {text} NOT NULL,
            labels {json} NOT NULL,
            subject {json} NOT NULL,
            value {double},
            summary {text} NOT NULL,
            active_since TIMESTAMPTZ,
            fired_at TIMESTAMPTZ,
            resolved_at TIMESTAMPTZ,
            evaluated_at TIMESTAMPTZ NOT NULL,
            acknowledged_at TIMESTAMPTZ,
            acknowledged_by {text},
            ack_comment {text},
            notified {text} NOT NULL,
            notified_at TIMESTAMPTZ,
            episode BIGINT NOT NULL
        )""",
        "CREATE INDEX alerts_state ON alerts (state)",
        "CREATE INDEX alerts_rule ON alerts (rule)",
        """CREATE TABLE alert_history (
            id {text} PRIMARY KEY,
            fingerprint {text} NOT NULL,
            rule {text} NOT NULL,
            changed_at TIMESTAMPTZ NOT NULL,
            from_state {text} NOT NULL,
            to_state {text} NOT NULL,
            labels {json} NOT NULL,
            value {double},
            summary {text} NOT NULL,
            episode BIGINT NOT NULL,
            note {text}
        )""",
        "CREATE INDEX alert_history_fingerprint ON alert_history (fingerprint, changed_at)",
        "CREATE INDEX alert_history_changed ON alert_history (changed_at)",
        """CREATE TABLE silences (
            id {text} PRIMARY KEY,
            matchers {json} NOT NULL,
            starts_at TIMESTAMPTZ NOT NULL,
            ends_at TIMESTAMPTZ NOT NULL,
            author {text} NOT NULL,
            comment {text} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE notifications (
            id {text} PRIMARY KEY,
            channel {text} NOT NULL,
            rule {text} NOT NULL,
            group_key {text} NOT NULL,
            kind {text} NOT NULL,
            status {text} NOT NULL,
            payload {json} NOT NULL,
            attempts BIGINT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            next_attempt_at TIMESTAMPTZ,
            sent_at TIMESTAMPTZ,
            last_error {text},
            read_at TIMESTAMPTZ
        )""",
        "CREATE INDEX notifications_due ON notifications (status, next_attempt_at)",
        "CREATE INDEX notifications_created ON notifications (created_at)",
        """CREATE TABLE deliveries (
            notification_id {text} NOT NULL,
            attempt BIGINT NOT NULL,
            attempted_at TIMESTAMPTZ NOT NULL,
            ok BOOLEAN NOT NULL,
            status_code BIGINT,
            error {text},
            duration_ms {double} NOT NULL,
            PRIMARY KEY (notification_id, attempt)
        )""",
    ],
    # Metrics (flowdeck.store.metrics_sql): one row per series (project, name, tags), raw
    # points, rollups per level (width in seconds) with their percentile sketch bins, and
    # named metric definitions. Times are whole numbers: microseconds for points, seconds
    # for buckets, so both backends do the same integer arithmetic.
    3: [
        """CREATE TABLE metric_series (
            series_id BIGINT PRIMARY KEY,
            project {text} NOT NULL,
            name {text} NOT NULL,
            tags {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX metric_series_name ON metric_series (project, name)",
        """CREATE TABLE metric_points (
            series_id BIGINT NOT NULL,
            t BIGINT NOT NULL,
            value {double} NOT NULL
        )""",
        "CREATE INDEX metric_points_series ON metric_points (series_id, t)",
        """CREATE TABLE metric_rollups (
            series_id BIGINT NOT NULL,
            level BIGINT NOT NULL,
            bucket BIGINT NOT NULL,
            n BIGINT NOT NULL,
            total {double} NOT NULL,
            lo {double} NOT NULL,
            hi {double} NOT NULL,
            PRIMARY KEY (series_id, level, bucket)
        )""",
        """CREATE TABLE metric_sketch_bins (
            series_id BIGINT NOT NULL,
            level BIGINT NOT NULL,
            bucket BIGINT NOT NULL,
            sign BIGINT NOT NULL,
            bin BIGINT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (series_id, level, bucket, sign, bin)
        )""",
        """CREATE TABLE metric_definitions (
            name {text} PRIMARY KEY,
            spec {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
    ],
    # Dashboards (flowdeck.dashboards.store): each one's definition as JSON with a version
    # for optimistic updates, and which built-in templates were ever created (so that a
    # template the user deleted is not created again at the next start).
    4: [
        """CREATE TABLE dashboards (
            id {text} PRIMARY KEY,
            title {text} NOT NULL,
            spec {json} NOT NULL,
            version BIGINT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE dashboard_templates (
            name {text} PRIMARY KEY,
            dashboard_id {text} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )""",
    ],
    # Flows (flowdeck.flows.store): a pipeline's declared stages, signals, traffic-light
    # thresholds and review rate, as JSON, keyed by (project, pipeline).
    5: [
        """CREATE TABLE flows (
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            title {text} NOT NULL,
            spec {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, pipeline)
        )""",
    ],
    # SLOs (flowdeck.slo.store): each one's definition as JSON, keyed by its name.
    6: [
        """CREATE TABLE slos (
            name {text} PRIMARY KEY,
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            spec {json} NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )""",
    ],
    # Incidents (flowdeck.incidents.store): each one with its summary, impact figures and
    # timeline (JSON); (project, pipeline, kind, subject) has at most one open incident.
    7: [
        """CREATE TABLE incidents (
            id {text} PRIMARY KEY,
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            kind {text} NOT NULL,
            subject {text} NOT NULL,
            stage {text},
            slo {text},
            severity {text} NOT NULL,
            state {text} NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            opened_at TIMESTAMPTZ NOT NULL,
            closed_at TIMESTAMPTZ,
            recovering_since TIMESTAMPTZ,
            updated_at TIMESTAMPTZ NOT NULL,
            title {text} NOT NULL,
            reading {text} NOT NULL,
            summary {text} NOT NULL,
            impact {text} NOT NULL,
            cause {text} NOT NULL,
            action {text} NOT NULL,
            bottleneck {text},
            value {double},
            peak {double},
            peak_at TIMESTAMPTZ,
            numbers {json} NOT NULL,
            timeline {json} NOT NULL
        )""",
        "CREATE INDEX incidents_state ON incidents (state, opened_at)",
        "CREATE INDEX incidents_pipeline ON incidents (project, pipeline, opened_at)",
    ],
    # Human review (flowdeck.review.store): sampled events waiting for (or carrying) a
    # reviewer's decision, keyed by a hash of (project, pipeline, event_id) so a re-post is
    # a no-op; and each pipeline's own sampling rate, used when it declares no flow.
    8: [
        """CREATE TABLE review_samples (
            id {text} PRIMARY KEY,
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            event_id {text} NOT NULL,
            signal {text} NOT NULL,
            record {json} NOT NULL,
            context {json} NOT NULL,
            sampled_at TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            status {text} NOT NULL,
            note {text},
            reviewer {text},
            decided_at TIMESTAMPTZ
        )""",
        "CREATE INDEX review_samples_queue ON review_samples (status, sampled_at)",
        "CREATE INDEX review_samples_pipeline ON review_samples (project, pipeline, sampled_at)",
        "CREATE INDEX review_samples_decided ON review_samples (decided_at)",
        """CREATE TABLE review_settings (
            project {text} NOT NULL,
            pipeline {text} NOT NULL,
            rate {double} NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, pipeline)
        )""",
    ],
    # Metric sketch bins in one table per rollup level, so that a query reads only its
    # level (and, the rows kept in time order, only its range); the rows move over.
    9: [
        *(
            f"""CREATE TABLE metric_bins_{name} (
            series_id BIGINT NOT NULL,
            bucket BIGINT NOT NULL,
            sign BIGINT NOT NULL,
            bin BIGINT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (series_id, bucket, sign, bin)
        )"""
            for name in ("1m", "5m", "1h", "1d")
        ),
        *(
            f"INSERT INTO metric_bins_{name} (series_id, bucket, sign, bin, n) "
            f"SELECT series_id, bucket, sign, bin, n FROM metric_sketch_bins WHERE level = {width} "
            "ORDER BY bucket, series_id, sign, bin"
            for name, width in (("1m", 60), ("5m", 300), ("1h", 3_600), ("1d", 86_400))
        ),
        "DROP TABLE metric_sketch_bins",
    ],
    # Percentiles kept ready per metric, level, tag value and bucket (store/metric_cells.py),
    # and the buckets whose cells a write of points made stale; existing data starts stale,
    # so its cells are computed in the background after the upgrade.
    10: [
        """CREATE TABLE metric_cells (
            project {text} NOT NULL,
            metric {text} NOT NULL,
            level BIGINT NOT NULL,
            tag {text} NOT NULL,
            tag_value {text} NOT NULL,
            bucket BIGINT NOT NULL,
            p50 {double} NOT NULL,
            p95 {double} NOT NULL,
            p99 {double} NOT NULL,
            PRIMARY KEY (project, metric, level, tag, bucket, tag_value)
        )""",
        """CREATE TABLE metric_stale (
            series_id BIGINT NOT NULL,
            level BIGINT NOT NULL,
            bucket BIGINT NOT NULL,
            PRIMARY KEY (series_id, level, bucket)
        )""",
        "INSERT INTO metric_stale (series_id, level, bucket) "
        "SELECT series_id, level, bucket FROM metric_rollups WHERE level IN (300, 3600, 86400) "
        "ORDER BY level, bucket, series_id",
    ],
    # DuckDB reads runs by scanning with zone maps, never through these two indexes (an ART
    # index serves only point lookups there); keeping them up to date was a quarter of the
    # cost of appending runs. PostgreSQL reads through them and keeps them.
    11: [
        OnlyOn("duckdb", "DROP INDEX runs_batch"),
        OnlyOn("duckdb", "DROP INDEX runs_pipeline"),
    ],
    # Marks of the writer's own: "pipelines" is when the earliest runs were written whose
    # pipeline states are kept back from their table (store/deferred.py), absent while none
    # are.
    12: [
        """CREATE TABLE writer_marks (
            name {text} PRIMARY KEY,
            marked_at TIMESTAMPTZ NOT NULL
        )""",
    ],
}

LATEST: Final = max(MIGRATIONS)
WRITER_MARKS: Final = 12  # the version that made writer_marks


def statements(version: int, backend: str) -> list[str]:
    """The statements of a migration that ``backend`` runs (types still to be spelled)."""
    return [
        s if isinstance(s, str) else s.statement
        for s in MIGRATIONS[version]
        if isinstance(s, str) or s.backend == backend
    ]
