"""Incidents: queue overflows, stalled stages and missed SLOs of the declared pipelines,
detected on a tick (``detect.py``, pure), kept in the store (``store.py``) and run by
``service.py``, which also hands them to the alert engine."""
