"""The API fixtures (an app on each store backend) serve these tests too."""

from tests.api.conftest import client, make_client

__all__ = ["client", "make_client"]
