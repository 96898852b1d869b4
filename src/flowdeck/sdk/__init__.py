"""Report a pipeline's runs to flowdeck from Python.

    from flowdeck.sdk import Client

    client = Client("http://flowdeck:8000", env="prod")
    with client.run("load_sales", batch_id=20261123) as run:
        run.rows_read += len(rows)
    client.gauge("queue.depth", 42, tags={"queue": "orders"})

Needs only the standard library, and never imports the flowdeck server.
"""

from flowdeck.sdk.client import Batch, Client
from flowdeck.sdk.flows import Flow, Stage
from flowdeck.sdk.review import Reviewer
from flowdeck.sdk.run import Run, current_run

__all__ = ["Batch", "Client", "Flow", "Reviewer", "Run", "Stage", "current_run"]
