"""The HTTP API: one router per resource, assembled by app.py."""
