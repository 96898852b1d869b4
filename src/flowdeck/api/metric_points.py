"""Metrics API: POST /metrics/points (ingest), POST /metrics/query, GET /metrics/names and
the named definitions at /metrics/definitions. The rules live in ``flowdeck.timeseries``."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from flowdeck.api.body import read_json, read_json_value
from flowdeck.api.errors import ApiError
from flowdeck.api.responses import JSON
from flowdeck.api.services import Services, services
from flowdeck.errors import FieldProblem, InvalidInput
from flowdeck.store.metrics_sql import MetricDefinitionRow, MetricsSql
from flowdeck.timeseries.batches import BATCH_METRICS
from flowdeck.timeseries.points import BadPointsJson, TooManyPoints, parse_points
from flowdeck.timeseries.query import MetricQuery, MetricSpec, check_filters, plan_query, run_query
from flowdeck.timeseries.runs import RUN_METRICS
from flowdeck.validation import field_problems

router = APIRouter(tags=["metrics"])
M = TypeVar("M", bound=BaseModel)
MAX_QUERY_BODY = 256 * 1024
# Bodies up to this size are validated on the event loop: a thread hop costs more.
INLINE_PARSE_BYTES = 64 * 1024
_DEFINITION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,199}")

_POINTS_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "description": (
                        "A point {name, time, value, tags?, project?}, a series in columns "
                        "{name, tags?, project?, times: [...], values: [...]}, or a list of "
                        "either. A time is ISO-8601 with a zone offset or seconds since 1970."
                    ),
                    "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
                }
            }
        },
    }
}


def metric_store(svc: Annotated[Services, Depends(services)]) -> MetricsSql:
    store = svc.store
    if not isinstance(store, MetricsSql):
        raise ApiError(503, "this store keeps no metrics")
    return store


Store = Annotated[MetricsSql, Depends(metric_store)]
Svc = Annotated[Services, Depends(services)]


@router.post(
    "/metrics/points",
    summary="Report metric points",
    description=(
        'Answers `{"accepted": n}` once the points and their rollups are committed. 422 '
        "names every invalid field (nothing of the request is written), including a metric "
        "whose tag combinations would exceed the limit; 413 over the body or point limit."
    ),
    openapi_extra=_POINTS_DOC,
    responses={413: {"description": "too large"}, 415: {"description": "not JSON"}},
)
async def post_points(request: Request, svc: Svc) -> Response:
    body = await read_json(request, svc.settings.max_body_bytes)
    limit = svc.settings.metric_max_points_per_request
    try:
        if len(body) <= INLINE_PARSE_BYTES:
            batch = parse_points(body, limit)
        else:
            batch = await run_in_threadpool(parse_points, body, limit)
    except TooManyPoints as exc:
        raise ApiError(413, str(exc)) from None
    except BadPointsJson as exc:
        raise ApiError(400, str(exc)) from None
    accepted = await svc.writer.write_points(batch, svc.settings.metric_max_series)
    return JSON({"accepted": accepted})


async def _model(request: Request, model: type[M]) -> M:
    data = await read_json_value(request, MAX_QUERY_BODY)
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("body", "must be a JSON object")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(field_problems(exc)) from None


@router.post(
    "/metrics/query",
    summary="Query a metric or a saved definition",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MetricQuery.model_json_schema()}},
        }
    },
)
async def post_query(request: Request, store: Store) -> Response:
    query = await _model(request, MetricQuery)
    saved = None
    if query.definition is not None and query.metric is None:
        row = await run_in_threadpool(store.get_metric_definition, query.definition)
        saved = MetricSpec.model_validate(row.spec)
    plan = plan_query(query, saved)
    return JSON(await run_in_threadpool(run_query, store, plan))


@router.get("/metrics/names", summary="The metrics of a project and the run metrics")
def get_names(
    store: Store,
    project: Annotated[str, Query(min_length=1, max_length=200)] = "default",
) -> Response:
    return JSON(
        {
            "metrics": [{"name": n, "series": c} for n, c in store.list_metric_names(project)],
            "run_metrics": sorted(RUN_METRICS),
            "batch_metrics": sorted(BATCH_METRICS),
        }
    )


def _definition_out(row: MetricDefinitionRow) -> dict[str, Any]:
    return {
        "name": row.name,
        **row.spec,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


@router.get("/metrics/definitions", summary="Saved metric definitions")
def list_definitions(store: Store) -> Response:
    return JSON({"definitions": [_definition_out(r) for r in store.list_metric_definitions()]})


@router.get("/metrics/definitions/{name}", summary="One saved metric definition")
def get_definition(name: str, store: Store) -> Response:
    return JSON(_definition_out(store.get_metric_definition(name)))


@router.put(
    "/metrics/definitions/{name}",
    summary="Create or replace a named metric definition",
    description='201 when created, 200 when replaced. Query it with `{"definition": name}`.',
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MetricSpec.model_json_schema()}},
        }
    },
)
async def put_definition(name: str, request: Request, store: Store, svc: Svc) -> Response:
    if not _DEFINITION_NAME.fullmatch(name):
        raise InvalidInput(
            [
                FieldProblem(
                    "name",
                    "must be 1 to 200 characters: a letter or _ first, then letters, digits, "
                    "_ . : -",
                )
            ]
        )
    spec = await _model(request, MetricSpec)
    problems = check_filters(spec.filters, "filters")
    if problems:
        raise InvalidInput(problems)
    data = spec.model_dump(mode="json")
    created = await svc.writer.run_call(
        lambda: store.put_metric_definition(name, data, svc.clock())
    )
    return JSON(
        _definition_out(store.get_metric_definition(name)), status_code=201 if created else 200
    )


@router.delete("/metrics/definitions/{name}", summary="Delete a named metric definition")
async def delete_definition(name: str, store: Store, svc: Svc) -> Response:
    await svc.writer.run_call(lambda: store.delete_metric_definition(name))
    return Response(status_code=204)
