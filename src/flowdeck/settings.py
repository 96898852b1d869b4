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
            group_linger_ms=_int_env("FLOWDECK_GROUP_LINGER_MS", base.group_linger_ms),
        )

    def resolved_database_url(self, filename: str = "flowdeck.duckdb") -> str:
        """The configured URL, else an embedded DuckDB file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"duckdb://{(self.data_dir / filename).resolve()}"
