"""/api/kennel/v1/experiments/...: the experiment workspace over the API (the pages call the same services).

Query parameters are plain strings checked by the services, so a bad value is a JSON:API 400 naming it.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel
from starlette.responses import Response, StreamingResponse

from kennel.auth import ActorDep, SessionDep, require_keys
from kennel.errors import Invalid
from kennel.experiments import compare as cmp
from kennel.experiments import compare_actions as actions
from kennel.experiments import overview
from kennel.experiments.compare_rows import RowQuery, check_query, page, rows
from kennel.experiments.compare_views import card_dict, head, list_item, row_dict
from kennel.experiments.schemas import (
    CompareSelectionIn,
    DatasetVersionRequest,
    MetricDirectionRequest,
    PairwiseRequest,
    QueueActionRequest,
)
from kennel.jsonapi import RawBody, bool_param, decode_cursor, encode_cursor, page_limit, parse_body, respond
from kennel.openapi import BOOLEAN, integer, json_body

router = APIRouter(dependencies=[Depends(require_keys)], tags=["kennel: experiment workspace"])

BASE = "/api/kennel/v1/experiments"
Str = Annotated[str | None, Query()]


def split(raw: str | None) -> list[str]:
    return [v.strip() for v in (raw or "").split(",") if v.strip()]


def row_query(*, metric: str | None, vs: str | None, outcome: str | None, value: str | None, errors: str | None,
              sort: str | None, order: str | None, cursor: str | None, limit: str | None) -> RowQuery:
    return RowQuery(metric or None, vs or None, outcome or None, value if value not in (None, "") else None,
                    bool_param(errors, "errors", False), sort or "record", order or "asc", cursor or None,
                    page_limit(limit, default=50, maximum=500, parameter="limit"))


class CompareParams:
    """The compare URL's parameters, shared by the compare, rows, tests and export routes."""

    def __init__(
        self,
        runs: Annotated[str | None, Query(description="run (experiment) ids, comma-separated, 2 to 10")] = None,
        baseline: Annotated[str | None, Query(description="one of the runs; default the oldest")] = None,
        metrics: Annotated[str | None, Query(description="only these metric labels, comma-separated")] = None,
        metric: Annotated[str | None, Query(description="filter rows: the metric an outcome or value applies to")]
        = None,
        vs: Annotated[str | None, Query(description="the run filtered and sorted on; default the first "
                                                    "after the baseline")] = None,
        outcome: Annotated[str | None, Query(description="improved, regressed, unchanged, changed or missing")]
        = None,
        value: Annotated[str | None, Query(description="true/false, a category, or a score such as >=0.5")] = None,
        errors: Annotated[str | None, Query(description="only records with an error in some run",
                                            json_schema_extra=BOOLEAN)] = None,
        sort: Annotated[str | None, Query(description="record (default) or a metric label")] = None,
        order: Annotated[str | None, Query(description="asc or desc")] = None,
        cursor: Annotated[str | None, Query(description="the `after` of the previous page")] = None,
        limit: Annotated[str | None, Query(json_schema_extra=integer(1, 500))] = None,
    ) -> None:
        self.runs, self.baseline, self.metrics = split(runs), baseline or None, split(metrics)
        self.rows = row_query(metric=metric, vs=vs, outcome=outcome, value=value, errors=errors, sort=sort,
                              order=order, cursor=cursor, limit=limit)

    def comparison(self, session: Any) -> tuple[cmp.Comparison, RowQuery]:
        comp = cmp.compare(session, self.runs, self.baseline, metrics=self.metrics)
        return comp, check_query(comp, self.rows)


Params = Annotated[CompareParams, Depends()]


@router.get(BASE)
def list_runs(
    session: SessionDep,
    project_id: Annotated[str | None, Query(description="a project's runs (or give dataset_id)")] = None,
    dataset_id: Annotated[str | None, Query(description="a dataset's runs")] = None,
    experiment: Annotated[str | None, Query(description="only runs of this experiment name")] = None,
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[str | None, Query(json_schema_extra=integer(1, 500))] = None,
) -> Response:
    """Runs newest first, each with its summary metrics and author; keyset pages."""
    if not project_id and not dataset_id:
        raise Invalid("give project_id or dataset_id", parameter="project_id")
    size = page_limit(limit, default=50, maximum=500, parameter="limit")
    before = decode_cursor(cursor, (int,), "cursor")[0] if cursor else None
    found = overview.list_runs(session, project_id=project_id, dataset_id=dataset_id, experiment=experiment or None,
                               before_pk=before, limit=size + 1)
    after = encode_cursor(found[size - 1].info.pk) if len(found) > size else None
    return respond({"data": [list_item(r) for r in found[:size]], "meta": {"after": after}})


@router.get(BASE + "/chart")
def chart(
    session: SessionDep,
    project_id: Annotated[str | None, Query(description="required")] = None,
    experiment: Annotated[str | None, Query(description="the experiment name (required)")] = None,
    metric: Annotated[str | None, Query(description="default the first metric")] = None,
) -> Response:
    """One metric (a boolean's pass rate, a score's mean) across the newest runs of one experiment name."""
    from kennel.projects.service import get_project

    if not project_id or not experiment:
        raise Invalid("project_id and experiment are required", parameter="project_id" if not project_id
                      else "experiment")
    project = get_project(session, project_id=project_id)
    labels, chosen, points = overview.chart(session, project_pk=project.pk, experiment=experiment, label=metric)
    if metric and metric not in labels:
        raise Invalid(f"unknown metric {metric!r}; runs of {experiment!r} have: {', '.join(labels) or 'none'}",
                      parameter="metric")
    return respond({"data": {"metric": chosen, "metrics": labels, "points": [
        {"run_id": p.run_id, "name": p.name, "created_at": p.created_at, "value": p.value} for p in points]}})


@router.get(BASE + "/compare")
def compare(session: SessionDep, params: Params) -> Response:
    """Cards (each run's figure, change against the baseline, counts, paired test), config diff, warnings, and
    the first page of rows aligned by dataset record (or the page at `cursor`)."""
    comp, q = params.comparison(session)
    differ, same = cmp.config_diff(comp)
    ids, after, total = page(comp, q)
    return respond({"data": {**head(comp), "cards": [card_dict(c) for c in cmp.cards(comp)],
                             "config_diff": {"differ": [{"key": k, "values": v} for k, v in differ], "same": same},
                             "rows": [row_dict(r) for r in rows(session, comp, ids)]},
                    "meta": {"after": after, "matching": total}})


@router.get(BASE + "/compare/rows")
def compare_rows(session: SessionDep, params: Params) -> Response:
    """One page of rows (no cards): the cheap call for paging."""
    comp, q = params.comparison(session)
    ids, after, total = page(comp, q)
    return respond({"data": [row_dict(r) for r in rows(session, comp, ids)],
                    "meta": {"after": after, "matching": total}})


@router.get(BASE + "/compare/tests")
def compare_tests(session: SessionDep, params: Params) -> Response:
    """The cards with their paired tests: McNemar's exact test for booleans; for scores a paired bootstrap
    interval (fixed seed) up to 500 pairs and the normal interval beyond."""
    comp, _ = params.comparison(session)
    return respond({"data": {**head(comp), "cards": [card_dict(c) for c in cmp.cards(comp)]}})


@router.get(BASE + "/compare/export")
def export(
    request: Request,
    session: SessionDep,
    params: Params,
    format: Annotated[str | None, Query(description="markdown (default) or csv")] = None,
) -> Response:
    """The comparison as Markdown (cards, for a pull request) or CSV (every record, every run)."""
    fmt = format or "markdown"
    if fmt not in ("markdown", "csv"):
        raise Invalid("format must be markdown or csv", parameter="format")
    comp, _ = params.comparison(session)
    if fmt == "markdown":
        return Response(actions.markdown(comp, cmp.cards(comp)), media_type="text/markdown; charset=utf-8")
    return StreamingResponse(actions.csv_stream(request.app.state.sessionmaker, comp),
                             media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="comparison.csv"'})


@router.put(BASE + "/metric-directions", openapi_extra=json_body(MetricDirectionRequest))
def set_direction(session: SessionDep, raw: RawBody) -> Response:
    """Remember whether higher is better for a metric label in a project (default: higher is better)."""
    attrs = _body(MetricDirectionRequest, raw).data.attributes
    cmp.set_direction(session, project_id=attrs.project_id, label=attrs.label,
                      higher_is_better=attrs.higher_is_better)
    return respond({"data": {"type": "metric_directions", "attributes": attrs.model_dump()}})


M = TypeVar("M", bound=BaseModel)


def _body(model: type[M], raw: bytes) -> M:
    # Names and labels go into rows PostgreSQL cannot store a NUL in: refused before anything is written.
    if b"\\u0000" in raw:
        raise Invalid("strings must not contain NUL characters (\\u0000)", pointer="")
    return parse_body(model, raw)


def _selection(session: Any, attrs: CompareSelectionIn) -> tuple[cmp.Comparison, list[str]]:
    comp = cmp.compare(session, attrs.runs, attrs.baseline)
    f = attrs.filter
    q = RowQuery(f.metric, f.vs, f.outcome, f.value, f.errors) if f else RowQuery(outcome="regressed")
    q = check_query(comp, q)
    return comp, actions.selection(comp, q, attrs.record_ids, pointer="/data/attributes/record_ids")


@router.post(BASE + "/compare/annotation-queue", openapi_extra=json_body(QueueActionRequest))
def to_annotation_queue(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """Send the selected records' traces in one run (default: the regressed ones of the first run after the
    baseline) to a queue as experiment traces; names an existing queue or makes one."""
    attrs = _body(QueueActionRequest, raw).data.attributes
    comp, chosen = _selection(session, attrs)
    result = actions.send_to_queue(session, comp, chosen, run_id=cmp.pick_run(comp, attrs.run, "run", pointer="/data/attributes/run"),
                                   queue_id=attrs.queue_id, queue_name=attrs.queue_name, actor=actor)
    return respond({"data": {"type": "annotation_queue_actions", "attributes": {
        "queue_id": result.queue_id, "created": result.created, "added": result.added,
        "skipped_record_ids": result.skipped}}})


@router.post(BASE + "/compare/pairwise-queue", openapi_extra=json_body(PairwiseRequest))
def to_pairwise_queue(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """A new queue asking "A or B or tie" (label `preference`: a, b, tie) for each selected record."""
    attrs = _body(PairwiseRequest, raw).data.attributes
    comp, chosen = _selection(session, attrs)
    result = actions.pairwise_queue(session, comp, chosen, a=cmp.pick_run(comp, attrs.a, "a", pointer="/data/attributes/a"), b=cmp.pick_run(comp, attrs.b, "b", pointer="/data/attributes/b"),
                                    name=attrs.queue_name, actor=actor)
    return respond({"data": {"type": "pairwise_queue_actions", "attributes": {
        "queue_id": result.queue_id, "added": result.added, "skipped_record_ids": result.skipped}}})


@router.post(BASE + "/compare/dataset-version", openapi_extra=json_body(DatasetVersionRequest))
def to_dataset_version(session: SessionDep, actor: ActorDep, raw: RawBody) -> Response:
    """Write the selected records with a run's outputs as expected outputs to a dataset, as one new version."""
    attrs = _body(DatasetVersionRequest, raw).data.attributes
    comp, chosen = _selection(session, attrs)
    result = actions.to_dataset(session, comp, chosen, run_id=cmp.pick_run(comp, attrs.run, "run", pointer="/data/attributes/run"),
                                dataset_id=attrs.dataset_id, actor=actor)
    return respond({"data": {"type": "dataset_version_actions", "attributes": {
        "dataset_id": result.dataset_id, "version": result.version, "added": result.added,
        "skipped_record_ids": result.skipped}}})
