"""flowdeck: operations dashboard and alerting for data pipelines."""

__version__ = "0.1.0"
