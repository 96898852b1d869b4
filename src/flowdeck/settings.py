"""One settings object, read from FLOWDECK_* environment variables and CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def default_data_dir() -> Path:
    """Where flowdeck keeps its embedded database unless told otherwise."""
    if env := os.environ.get("FLOWDECK_DATA_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "flowdeck"


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None


_RETENTION_LEVELS = ("RAW", "1M", "5M", "1H", "1D")


def _retention_env(default: tuple[int, int, int, int, int]) -> tuple[int, int, int, int, int]:
    """FLOWDECK_METRIC_RETENTION_<RAW|1M|5M|1H|1D>_DAYS, each a whole number of days ≥ 1."""
    days = [
        _int_env(f"FLOWDECK_METRIC_RETENTION_{level}_DAYS", value)
        for level, value in zip(_RETENTION_LEVELS, default, strict=True)
    ]
    for level, value in zip(_RETENTION_LEVELS, days, strict=True):
        if value < 1:
            raise SystemExit(f"FLOWDECK_METRIC_RETENTION_{level}_DAYS must be at least 1")
    return (days[0], days[1], days[2], days[3], days[4])


@dataclass(frozen=True)
class Settings:
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=default_data_dir)
    max_body_bytes: int = 32 * 1024 * 1024
    max_runs_per_request: int = 10_000
    # Upper bound on runs merged into one group commit; more wait for the next one.
    max_group_runs: int = 50_000
    # Alerting: rules and channels as code, links in notifications, the evaluation tick.
    alerts_file: str = ""
    public_url: str = ""  # default http://<host>:<port>
    runbook_url: str = ""  # default <public_url>/runbook
    alert_tick_seconds: float = 15.0
    # Metrics: series (tag combinations) per metric, points per request, retention in days
    # per level (raw points, 1m, 5m, 1h, 1d rollups) and how often compaction runs.
    metric_max_series: int = 1_000
    metric_max_points_per_request: int = 500_000
    metric_retention_days: tuple[int, int, int, int, int] = (7, 30, 90, 365, 1825)
    metric_compaction_seconds: float = 300.0
    # How often the kept percentiles of stale buckets are recomputed (a query reads stale
    # buckets from the sketch bins meanwhile, so this changes cost, never answers).
    metric_cells_seconds: float = 10.0
    # How long a group commit may wait for more requests when several clients write at once
    # (at most half the last commit's duration; 0 turns it off).
    group_linger_ms: int = 10

    @classmethod
    def from_env(cls) -> Settings:
        base = cls()
        return replace(
            base,
            database_url=os.environ.get("FLOWDECK_DATABASE_URL", ""),
            host=os.environ.get("FLOWDECK_HOST", base.host),
            port=_int_env("FLOWDECK_PORT", base.port),
            max_body_bytes=_int_env("FLOWDECK_MAX_BODY_BYTES", base.max_body_bytes),
            max_runs_per_request=_int_env(
                "FLOWDECK_MAX_RUNS_PER_REQUEST", base.max_runs_per_request
            ),
            alerts_file=os.environ.get("FLOWDECK_ALERTS_FILE", ""),
            public_url=os.environ.get("FLOWDECK_PUBLIC_URL", ""),
            runbook_url=os.environ.get("FLOWDECK_RUNBOOK_URL", ""),
            alert_tick_seconds=_int_env("FLOWDECK_ALERT_TICK_SECONDS", 15),
            metric_max_series=_int_env("FLOWDECK_METRIC_MAX_SERIES", base.metric_max_series),
            metric_max_points_per_request=_int_env(
                "FLOWDECK_METRIC_MAX_POINTS_PER_REQUEST", base.metric_max_points_per_request
            ),
            metric_retention_days=_retention_env(base.metric_retention_days),
            metric_compaction_seconds=_int_env(
                "FLOWDECK_METRIC_COMPACTION_SECONDS", int(base.metric_compaction_seconds)
            ),
            metric_cells_seconds=_int_env(
                "FLOWDECK_METRIC_CELLS_SECONDS", int(base.metric_cells_seconds)
            ),
            group_linger_ms=_int_env("FLOWDECK_GROUP_LINGER_MS", base.group_linger_ms),
        )

    @property
    def resolved_public_url(self) -> str:
        """The address people reach this flowdeck at, for links in notifications."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def resolved_database_url(self, filename: str = "flowdeck.duckdb") -> str:
        """The configured URL, else an embedded DuckDB file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"duckdb://{(self.data_dir / filename).resolve()}"
