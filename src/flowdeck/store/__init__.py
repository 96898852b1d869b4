"""Stores, chosen by URL: ``duckdb:///file.duckdb`` or ``postgresql://…``."""

from __future__ import annotations

from flowdeck.errors import UnknownBackend
from flowdeck.store.base import BatchQuery, BatchRow, PipelineRow, RunQuery, Store, WritePlan

SCHEMES = ("duckdb://", "postgresql://", "postgres://", "postgresql+psycopg://")


def open_store(url: str) -> Store:
    """Open (not yet migrate) the store a URL names; an unknown scheme is refused by name."""
    if url.startswith("duckdb://"):
        from flowdeck.store.duckdb import DuckDBStore

        return DuckDBStore(url)
    if url.startswith(SCHEMES[1:]):
        from flowdeck.store.postgres import PostgresStore

        return PostgresStore(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise UnknownBackend(
        f"unknown database URL scheme {scheme!r}: use duckdb:///path/to/file.duckdb "
        "or postgresql://user@host:port/dbname"
    )


__all__ = [
    "BatchQuery",
    "BatchRow",
    "PipelineRow",
    "RunQuery",
    "Store",
    "WritePlan",
    "open_store",
]
