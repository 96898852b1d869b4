"""Alerting: rules, the pure engine, its store, notifiers and the service that runs them."""
