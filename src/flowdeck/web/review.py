"""The review pages: ``/review`` (the queue with its filters, counts and approval rate over
time, each sampled record with its context and an approve / reject form) and
``/review/{id}`` (one sample). The JSON twins are /api/v1/review/samples and
/api/v1/review/summary; ``static/review.js`` adds the keyboard, the chart and live counts.

Decisions post a plain form (``POST /review/{id}/decision``), so the page works without
JavaScript: a good one goes back to the queue, whose next sample is then first; a refused
one (a rejection without a note, a sample decided meanwhile) shows the page again with the
problem next to the form.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Final
from urllib.parse import parse_qs, quote, urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from starlette.responses import RedirectResponse, Response

from flowdeck.api.services import Services, services
from flowdeck.errors import (
    Conflict,
    FieldProblem,
    FlowdeckError,
    InvalidInput,
    StoreUnavailable,
)
from flowdeck.review.model import SampleFilter, parse_decision, parse_setting
from flowdeck.review.sampling import MAX_RATE, MIN_RATE
from flowdeck.review.service import ReviewService
from flowdeck.review.summary import RANGE_NAMES, RANGES, summary
from flowdeck.web.alerting import form
from flowdeck.web.pages import error_page, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Services, Depends(services)]

PAGE_SIZE: Final = 20
STATUS_NAMES: Final = {
    "pending": "Pending",
    "approved": "Approved",
    "rejected": "Rejected",
    "all": "All",
}
RATE_CHOICES: Final = (0.005, 0.01, 0.015, 0.02)
assert RATE_CHOICES[0] == MIN_RATE and RATE_CHOICES[-1] == MAX_RATE


def _review(svc: Services) -> ReviewService:
    if svc.review is None:
        raise StoreUnavailable("review is not available on this store")
    return svc.review


class Selection:
    """The queue's filters as the page's query says them (unknown values fall back)."""

    def __init__(self, params: Any) -> None:
        status = params.get("status", "pending")
        self.status = status if status in STATUS_NAMES else "pending"
        self.pipeline = params.get("pipeline", "")[:200]
        self.signal = params.get("signal", "")[:100]
        self.project = params.get("project", "")[:200]
        rng = params.get("range", "7d")
        self.range = rng if rng in RANGES else "7d"
        raw = params.get("page", "1")
        self.page = int(raw) if raw.isdigit() and 0 < int(raw) < 1_000_000 else 1

    @property
    def filter(self) -> SampleFilter:
        return SampleFilter(
            None if self.status == "all" else self.status,
            self.project or None,
            self.pipeline or None,
            self.signal or None,
        )

    def params(self, **change: Any) -> dict[str, Any]:
        out = {
            "status": self.status,
            "pipeline": self.pipeline,
            "signal": self.signal,
            "project": self.project,
            "range": self.range,
            "page": self.page,
        }
        out.update(change)
        defaults = {"status": "pending", "range": "7d", "page": 1}
        return {k: v for k, v in out.items() if v not in ("", None) and defaults.get(k) != v}

    def url(self, **change: Any) -> str:
        query = urlencode(self.params(**change))
        return f"/review?{query}" if query else "/review"

    def api_query(self) -> str:
        keep = {
            k: v
            for k, v in self.params(page=1, range="7d").items()
            if k in ("status", "pipeline", "signal", "project")
        }
        if self.status == "pending":
            keep["status"] = "pending"
        return urlencode(keep)


def _script_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_UTC_Z).decode().replace("</", "<\\/")


def queue_page(
    request: Request,
    svc: Services,
    sel: Selection,
    *,
    problem: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    review = _review(svc)
    store = review.store
    total, rows = store.list_samples(
        sel.filter,
        offset=(sel.page - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
        oldest_first=sel.status == "pending",
    )
    pages = max(1, math.ceil(total / PAGE_SIZE))
    if sel.page > pages:  # past the end (the queue shrank since the link was made)
        sel.page = pages
        total, rows = store.list_samples(
            sel.filter,
            offset=(pages - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
            oldest_first=sel.status == "pending",
        )
    numbers = summary(store, sel.filter, sel.range, svc.clock())
    pipelines = store.list_pipelines()
    rate = None
    if sel.pipeline:
        rate = review.rate_of(sel.project or "default", sel.pipeline)
    return page(
        request,
        "review.html",
        {
            "nav": "review",
            "sel": sel,
            "rows": rows,
            "total": total,
            "pages": pages,
            "numbers": numbers,
            "chart_json": _script_json(
                {
                    "series": numbers["series"],
                    "summary_url": f"/api/v1/review/summary?{sel.api_query()}&range={sel.range}",
                }
            ),
            "pipelines": sorted({p for _, p in pipelines}),
            "signals": store.list_signals(),
            "status_names": STATUS_NAMES,
            "range_names": RANGE_NAMES,
            "rate": rate,
            "rate_choices": RATE_CHOICES,
            "csv_url": f"/api/v1/review/samples.csv?{sel.api_query()}",
            "json_url": f"/api/v1/review/samples?{sel.api_query()}",
            "back": sel.url(),
            "done": request.query_params.get("done", "")[:300],
            "problem": problem,
        },
        status_code=status_code,
    )


@router.get("/review")
def review_page(request: Request, svc: Svc) -> Response:
    try:
        return queue_page(request, svc, Selection(request.query_params))
    except FlowdeckError as exc:
        return error_page(request, exc)


@router.get("/review/{sample_id}")
def sample_page(sample_id: str, request: Request, svc: Svc) -> Response:
    return render_sample(request, svc, sample_id)


def render_sample(
    request: Request,
    svc: Services,
    sample_id: str,
    problem: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    try:
        review = _review(svc)
        row = review.store.get_sample(sample_id)
    except FlowdeckError as exc:
        return error_page(request, exc)
    back = request.query_params.get("back", "")
    return page(
        request,
        "review_item.html",
        {
            "nav": "review",
            "s": row,
            "back": back if _local(back) else "/review",
            "done": request.query_params.get("done", "")[:300],
            "problem": problem,
        },
        status_code=status_code,
    )


def _local(url: str) -> bool:
    return url.startswith("/review") and not url.startswith("//")


@router.post("/review/{sample_id}/decision")
async def post_decision(sample_id: str, request: Request, svc: Svc) -> Response:
    """The form of a sample: ``outcome``, ``note``, ``reviewer``, and ``back`` (the queue's
    URL, or this sample's page) to return to."""
    data = await form(request)
    back = data.get("back", "")
    back = back if _local(back) else "/review"
    try:
        review = _review(svc)
        decision = parse_decision(
            {
                "outcome": data.get("outcome", ""),
                "note": data.get("note", ""),
                "reviewer": data.get("reviewer", ""),
            }
        )
        sample = await review.decide(sample_id, decision)
    except (InvalidInput, Conflict) as exc:
        problems = exc.problems if isinstance(exc, InvalidInput) else [FieldProblem("", str(exc))]
        problem = {
            "id": sample_id,
            "problems": problems,
            "note": data.get("note", ""),
            "outcome": data.get("outcome", ""),
        }
        status = 422 if isinstance(exc, InvalidInput) else 409
        if back.startswith("/review/"):
            return render_sample(request, svc, sample_id, problem=problem, status_code=status)
        query = back.partition("?")[2]
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        try:
            return queue_page(request, svc, Selection(params), problem=problem, status_code=status)
        except FlowdeckError as inner:
            return error_page(request, inner)
    except FlowdeckError as exc:
        return error_page(request, exc)
    verb = "Approved" if sample.status == "approved" else "Rejected"
    done = f"{verb} {sample.event_id} ({sample.pipeline})"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}done={quote(done)}", status_code=303)


@router.post("/review/settings/{pipeline}")
async def post_setting(pipeline: str, request: Request, svc: Svc) -> Response:
    """The queue's "sampling rate" form: ``rate`` (a fraction), ``project``, ``back``."""
    data = await form(request)
    back = data.get("back", "")
    back = back if _local(back) else "/review"
    try:
        review = _review(svc)
        try:
            rate = float(data.get("rate", ""))
        except ValueError:
            raise InvalidInput([FieldProblem("rate", "must be a number")]) from None
        setting = parse_setting({"project": data.get("project") or "default", "rate": rate})
        result = await review.put_rate(setting.project, pipeline, setting.rate)
    except FlowdeckError as exc:
        return error_page(request, exc)
    done = f"Sampling rate of {pipeline} set to {setting.rate * 100:g} %"
    if result.source == "flow":
        done += f" (its flow declaration's {result.rate * 100:g} % still applies)"
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}done={quote(done)}", status_code=303)
