"""Metrics: points any pipeline or service reports (name, time, value, tags, project), their
rollups at 1m / 5m / 1h / 1d, the query API's semantics, and named metric definitions.

Points and rollups live in the store (``store/metrics_sql.py``); every write goes through the
single writer thread (``ingest/writer.py``).
"""
