"""Stores, chosen by URL: ``duckdb:///file.duckdb`` or ``postgresql://…``."""

from __future__ import annotations

from flowdeck.errors import UnknownBackend
from flowdeck.store.base import BatchQuery, BatchRow, RunQuery, Store, WritePlan

SCHEMES = ("duckdb://", "postgresql://", "postgres://", "postgresql+psycopg://")


def check_url(url: str) -> None:
    """Refuse, by name, a URL whose scheme no store handles."""
    if not url.startswith(SCHEMES):
        scheme = url.split(":", 1)[0] if ":" in url else url
        raise UnknownBackend(
            f"unknown database URL scheme {scheme!r}: use duckdb:///path/to/file.duckdb "
            "or postgresql://user@host:port/dbname"
        )


def open_store(url: str) -> Store:
    """Open (not yet migrate) the store a URL names; an unknown scheme is refused by name."""
    check_url(url)
    if url.startswith("duckdb://"):
        from flowdeck.store.duckdb import DuckDBStore

        return DuckDBStore(url)
    from flowdeck.store.postgres import PostgresStore

    return PostgresStore(url)


__all__ = [
    "BatchQuery",
    "BatchRow",
    "RunQuery",
    "Store",
    "WritePlan",
    "check_url",
    "open_store",
]
