"""Schema versions. Each migration is a list of statements; types are spelled through the
dialect's type names so both backends share one definition. Append, never edit."""

from __future__ import annotations

from typing import Final

MIGRATIONS: Final[dict[int, list[str]]] = {
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
}

LATEST: Final = max(MIGRATIONS)
