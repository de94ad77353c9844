"""The experiment workspace pages: a project's runs (with a chart of one metric across the runs of an
experiment name), the comparison of 2..N runs, and one record with every run's trace side by side.

The URL is the state: runs, baseline, filters, mode, sort and page cursor are query parameters, so a
refresh, Back or a pasted link shows the same thing. Pages call the same services as
/api/kennel/v1/experiments/..., and every action they offer is one of those API calls.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from kennel.annotations import service as queues
from kennel.auth import SessionDep
from kennel.datasets import service as datasets
from kennel.errors import Invalid, KennelError, NotFound
from kennel.experiments import compare as cmp
from kennel.experiments import compare_actions as actions
from kennel.experiments import overview, stats
from kennel.experiments.compare_rows import MODES, RowQuery, check_query, page, rows
from kennel.jsonapi import bool_param, decode_cursor, encode_cursor
from kennel.people.roles import Permission
from kennel.projects import service as projects
from kennel.spans.trace_view import load_trace
from kennel.web.auth import Person, PersonDep
from kennel.web.router import FormDep, render

router = APIRouter(include_in_schema=False)
LIST_PAGE = 50
ROW_PAGE = 50
COMPACT = 160


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for raw in values or [] for v in raw.split(",") if v.strip()]


# The runs of a project --------------------------------------------------------------------------------

@router.get("/projects/{project_id}/experiments")
def experiments_page(request: Request, session: SessionDep, person: PersonDep, project_id: str,
                     dataset: str = "", experiment: str = "", metric: str = "",
                     cursor: str | None = None) -> Response:
    person.require(Permission.READ, "reading experiments")
    project = projects.get_project(session, project_id=project_id)
    before = decode_cursor(cursor, (int,), "cursor")[0] if cursor else None
    found = overview.list_runs(session, project_id=project_id, dataset_id=dataset or None,
                               experiment=experiment or None, before_pk=before, limit=LIST_PAGE + 1)
    next_url = None
    if len(found) > LIST_PAGE:
        params = {k: v for k, v in request.query_params.items() if k != "cursor"}
        next_url = f"{request.url.path}?{urlencode({**params, 'cursor': encode_cursor(found[LIST_PAGE - 1].info.pk)})}"
    found = found[:LIST_PAGE]
    # The chart: one experiment name, the one asked for or the newest run's.
    name = experiment or (found[0].info.experiment if found else "")
    labels, chosen, points = (overview.chart(session, project_pk=project.pk, experiment=name, label=metric or None)
                              if name else ([], None, []))
    summary_labels = sorted({k for r in found for k in r.summary})
    names = sorted({r.info.experiment for r in found})
    sets = datasets.list_datasets(session, project_id=project_id, ids=None, name=None, before_pk=None, limit=200)
    return render(request, "experiments.html", person=person, nav="projects", project=project, runs=found,
                  summary_labels=summary_labels, dataset=dataset, experiment=experiment, chart_name=name,
                  chart_labels=labels, chart_metric=chosen, chart=overview.svg_points(points), names=names,
                  datasets=sets, next_url=next_url, fmt=stats.fmt)


# The comparison ----------------------------------------------------------------------------------------

class View:
    """The compare URL's state, and links that change one part of it."""

    KEYS = ("runs", "baseline", "metric", "vs", "outcome", "value", "errors", "sort", "order", "mode")

    def __init__(self, params: dict[str, str]) -> None:
        self.params = {k: v for k, v in params.items() if k in self.KEYS and v}

    def url(self, path: str = "/experiments/compare", **changes: str | None) -> str:
        params = dict(self.params)
        for k, v in changes.items():
            if v:
                params[k] = v
            else:
                params.pop(k, None)
        return f"{path}?{urlencode(params)}"

    def filter_url(self, **changes: str | None) -> str:
        # A new filter starts from the first page and keeps everything else.
        return self.url("/experiments/compare", **changes)


def _view_params(request: Request, run: list[str] | None) -> dict[str, str]:
    params = dict(request.query_params)
    runs = _split([params.get("runs", "")] + list(run or []))
    params["runs"] = ",".join(dict.fromkeys(runs))
    params.pop("run", None)
    return params


def _comparison(session: Any, params: dict[str, str]) -> tuple[cmp.Comparison, RowQuery]:
    comp = cmp.compare(session, _split([params.get("runs", "")]), params.get("baseline") or None)
    q = RowQuery(params.get("metric") or None, params.get("vs") or None, params.get("outcome") or None,
                 params.get("value") or None, bool_param(params.get("errors"), "errors", False),
                 params.get("sort") or "record", params.get("order") or "asc", params.get("cursor") or None, ROW_PAGE)
    return comp, check_query(comp, q)


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else "" if value is None else actions.pretty(value)
    text = " ".join(text.split())
    return text if len(text) <= COMPACT else text[:COMPACT] + "…"


def _value_text(kind: str, value: Any) -> str:
    if value is None:
        return "—"
    if kind == "boolean":
        return "pass" if value else "fail"
    if kind == "score":
        return stats.fmt(value)
    return str(value)


@router.get("/experiments/compare")
def compare_page(request: Request, session: SessionDep, person: PersonDep,
                 run: Annotated[list[str] | None, Query()] = None) -> Response:
    person.require(Permission.READ, "comparing experiments")
    params = _view_params(request, run)
    if len(_split([params["runs"]])) < 2:
        raise Invalid("Pick at least two runs to compare.", parameter="runs")
    comp, q = _comparison(session, params)
    view = View(params)
    mode = params.get("mode") if params.get("mode") in MODES else "compact"
    ids, after, total = page(comp, q)
    shown = rows(session, comp, ids, with_diff=mode == "diff")
    differ, same = cmp.config_diff(comp)
    project = projects.get_project(session, project_id=comp.baseline.info.project_id)
    may_act = person.may(Permission.WRITE)
    queue_choices = [qu for qu, _ in queues.list_queues(session, project_id=project.id, queue_ids=None,
                                                        actor=person.actor)] if may_act else []
    dataset_choices = datasets.list_datasets(session, project_id=project.id, ids=None, name=None, before_pk=None,
                                             limit=200) if may_act else []
    return render(request, "experiment_compare.html", person=person, nav="projects", project=project, comp=comp,
                  q=q, view=view, mode=mode, cards=cmp.cards(comp), rows=shown, total=total,
                  next_url=view.url(cursor=after) if after else None, config_differ=differ, config_same=same,
                  names={r.info.id: r.info.name for r in comp.runs}, short=_short, value_text=_value_text,
                  describe=stats.describe, fmt=stats.fmt, fmt_signed=stats.fmt_signed, may_act=may_act,
                  queue_choices=queue_choices, dataset_choices=dataset_choices, first_page=not q.cursor)


@router.get("/experiments/compare/records/{record_id:path}")
def record_page(request: Request, session: SessionDep, person: PersonDep, record_id: str) -> Response:
    person.require(Permission.READ, "comparing experiments")
    params = _view_params(request, None)
    comp, _ = _comparison(session, params)
    if record_id not in set(comp.record_ids):
        raise NotFound(f"record {record_id!r} is in none of these runs")
    row = rows(session, comp, [record_id], with_diff=True)[0]
    traces = [(cell, load_trace(session, cell.trace_id) if cell.present else None) for cell in row.cells]
    for _, trace in traces:
        for root in trace.roots if trace else ():
            root.open = True  # the experiment span itself: its input, output and evaluations at a glance
    view = View(params)
    return render(request, "experiment_record.html", person=person, nav="projects", comp=comp, row=row,
                  traces=traces, view=view, names={r.info.id: r.info.name for r in comp.runs},
                  value_text=_value_text, project_id=comp.baseline.info.project_id)


@router.get("/experiments/compare/export")
def export_page(request: Request, session: SessionDep, person: PersonDep, format: str = "markdown") -> Response:
    person.require(Permission.READ, "comparing experiments")
    params = _view_params(request, None)
    comp, _ = _comparison(session, params)
    if format == "csv":
        return StreamingResponse(actions.csv_stream(request.app.state.sessionmaker, comp),
                                 media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": 'attachment; filename="comparison.csv"'})
    return Response(actions.markdown(comp, cmp.cards(comp)), media_type="text/plain; charset=utf-8")


# Actions (members and admins) ------------------------------------------------------------------------

def _form_params(form: Any) -> dict[str, str]:
    return {k: str(form.get(k) or "") for k in View.KEYS if form.get(k)}


def _selected(form: Any, comp: cmp.Comparison, q: RowQuery) -> list[str]:
    chosen = [str(v) for v in form.getlist("record")]
    if chosen:
        return actions.selection(comp, q, chosen, pointer="record")
    return actions.selection(comp, q if q.outcome or q.errors or q.value else
                             RowQuery(q.metric, q.vs, "regressed"), None, pointer="record")


def _done(request: Request, person: Person, heading: str, text: str, back: str, status: int = 200) -> Response:
    return render(request, "message.html", status, person=person, heading=heading, text=text, back=back)


def _act(request: Request, session: Any, person: Person, form: Any, what: str, work: Any) -> Response:
    person.require(Permission.WRITE, what)
    params = _form_params(form)
    back = View(params).url()
    try:
        comp, q = _comparison(session, params)
        chosen = _selected(form, comp, q)
        heading, text = work(comp, chosen)
    except KennelError as exc:
        session.rollback()
        return _done(request, person, "Nothing was changed", exc.detail, back, exc.status)
    return _done(request, person, heading, text, back)


@router.post("/experiments/compare/direction")
def direction(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    person.require(Permission.WRITE, "changing a metric's direction")
    params = _form_params(form)
    cmp.set_direction(session, project_id=str(form.get("project_id") or ""), label=str(form.get("label") or ""),
                      higher_is_better=form.get("higher") == "true")
    return RedirectResponse(View(params).url(), status_code=303)


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    if isinstance(value, str) and "\x00" in value:
        raise Invalid(f"{name} contains a NUL character, which nothing can store", parameter=name)
    return value.strip() if isinstance(value, str) else ""


def _said(text: str, skipped: list[str], why: str) -> str:
    return text + (f"; {len(skipped)} record(s) {why}" if skipped else "") + "."


@router.post("/experiments/compare/annotation-queue")
def to_queue(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    def work(comp: cmp.Comparison, chosen: list[str]) -> tuple[str, str]:
        got = actions.send_to_queue(session, comp, chosen, run_id=cmp.pick_run(comp, _field(form, "run"), "run"),
                                    queue_id=_field(form, "queue_id") or None,
                                    queue_name=_field(form, "queue_name") or None, actor=person.actor)
        where = "a new" if got.created else "the"
        return "Sent to the annotation queue", _said(f"{got.added} trace(s) added to {where} queue ({got.queue_id})",
                                                     got.skipped, "had no trace in that run")
    return _act(request, session, person, form, "sending records to a queue", work)


@router.post("/experiments/compare/pairwise-queue")
def to_pairwise(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    def work(comp: cmp.Comparison, chosen: list[str]) -> tuple[str, str]:
        got = actions.pairwise_queue(session, comp, chosen, a=cmp.pick_run(comp, _field(form, "a"), "a"),
                                     b=cmp.pick_run(comp, _field(form, "b"), "b"),
                                     name=_field(form, "pairwise_name") or "pairwise review", actor=person.actor)
        return "Pairwise queue created", _said(f"{got.added} pair(s) to judge “A or B or tie” in queue {got.queue_id}",
                                               got.skipped, "lacked a result in one run")
    return _act(request, session, person, form, "building a pairwise queue", work)


@router.post("/experiments/compare/dataset-version")
def to_dataset(request: Request, session: SessionDep, person: PersonDep, form: FormDep) -> Response:
    def work(comp: cmp.Comparison, chosen: list[str]) -> tuple[str, str]:
        got = actions.to_dataset(session, comp, chosen, run_id=cmp.pick_run(comp, _field(form, "output_run"), "run"),
                                 dataset_id=_field(form, "dataset_id"), actor=person.actor)
        return "New dataset version", _said(
            f"{got.added} record(s) written as version {got.version} of dataset {got.dataset_id}", got.skipped,
            "skipped (no output in that run)")
    return _act(request, session, person, form, "adding records to a dataset", work)
