"""A batch id in a URL path may hold "/" (``2026/11/23``), spelled as it is or as ``%2F``
(which the server decodes before routing). ``{batch_id:batch}`` takes every character of
the path up to the end or up to one of a batch's own sub-paths (``/runs``, ``/runs.csv``,
``/dq``) at its end, so that a batch's summary, processes, CSV and DQ errors keep their
paths whatever the order the routes were declared in. (A batch whose id itself ends in one
of those words is read through its sub-path: the one ambiguity left.)"""

from __future__ import annotations

import re
from typing import Final

from starlette.convertors import Convertor, register_url_convertor

BATCH_SUBPATHS: Final = ("runs", "runs.csv", "dq")


class BatchIdConvertor(Convertor[str]):
    # Any character, as long as what is left of the path is not "/" and a sub-path.
    regex = rf"(?:(?!/(?:{'|'.join(map(re.escape, BATCH_SUBPATHS))})$).)+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("batch", BatchIdConvertor())
