"""The experiments list of a project or dataset (with each run's summary metrics and author) and the data
of a chart of one metric across the runs of one experiment name. Both are a few set-based queries for the
page's runs, whatever the number of runs in the project."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Float, String, case, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from kennel.experiments import service
from kennel.experiments.compare_run import RunInfo, run_info
from kennel.experiments.models import Experiment
from kennel.keys.models import ApiKey
from kennel.people.models import User
from kennel.spans.models import SpanMetric

CHART_RUNS = 30


@dataclass
class RunRow:
    info: RunInfo
    author: str
    summary: dict[str, Any] = field(default_factory=dict)


def _parts(session: Session) -> tuple[Any, Any, Any, Any]:
    """(type, a number for booleans and scores, the categorical text, status) out of a metric's JSON body."""
    body = SpanMetric.body
    if session.get_bind().dialect.name == "postgresql":
        doc = type_coerce(body, JSONB)
        kind = doc["metric_type"].astext
        number = case((kind == "boolean", case((doc["boolean_value"].astext == "true", 1.0), else_=0.0)),
                      else_=doc["score_value"].astext.cast(Float))
        return kind, number, doc["categorical_value"].astext, doc["status"].astext
    kind = func.json_extract(body, "$.metric_type").cast(String)
    number = case((kind == "boolean", func.json_extract(body, "$.boolean_value").cast(Float)),
                  else_=func.json_extract(body, "$.score_value").cast(Float))
    return (kind, number, func.json_extract(body, "$.categorical_value"),
            func.json_extract(body, "$.status").cast(String))


def summaries(session: Session, run_pks: list[int]) -> dict[int, dict[str, Any]]:
    """The summary metrics (summary evaluators' values, tied to no span) of these runs."""
    if not run_pks:
        return {}
    kind, number, text, _ = _parts(session)
    out: dict[int, dict[str, Any]] = defaultdict(dict)
    for pk, label, k, n, t in session.execute(
            select(SpanMetric.experiment_pk, SpanMetric.label, kind, number, text)
            .where(SpanMetric.experiment_pk.in_(run_pks), SpanMetric.span_id == "").order_by(SpanMetric.pk)):
        if label not in out[pk]:
            out[pk][label] = t if k == "categorical" else (bool(n) if k == "boolean" and n is not None else n)
    return out


def authors(session: Session, ids: set[str]) -> dict[str, str]:
    ids.discard("")
    if not ids:
        return {}
    names = dict(session.execute(select(User.id, User.username).where(User.id.in_(list(ids)))).all())
    # A key pair that belongs to no person authors as itself: show the pair's name.
    rest = [i for i in ids if i not in names]
    if rest:
        names.update(session.execute(select(ApiKey.id, ApiKey.name).where(ApiKey.id.in_(rest))).all())
    return names


def list_runs(session: Session, *, project_id: str | None, dataset_id: str | None, experiment: str | None,
              before_pk: int | None, limit: int) -> list[RunRow]:
    found = service.list_experiments(session, project_id=project_id, dataset_id=dataset_id, ids=[], name=None,
                                     experiment=experiment, metadata=None, parent_ids=[], deleted=False,
                                     before_pk=before_pk, limit=limit)
    infos = [run_info(tuple(r)) for r in found]
    sums = summaries(session, [i.pk for i in infos])
    names = authors(session, {i.author_id or "" for i in infos})
    return [RunRow(i, names.get(i.author_id or "", i.author_id or ""), sums.get(i.pk, {})) for i in infos]


@dataclass
class ChartPoint:
    run_id: str
    name: str
    created_at: Any
    value: float | None


def chart(session: Session, *, project_pk: int, experiment: str, label: str | None) -> tuple[list[str], str | None,
                                                                                           list[ChartPoint]]:
    """(metrics available, the one charted, one point per run, oldest first) for the newest CHART_RUNS runs of
    one experiment name: a boolean metric's pass rate or a score's mean over the run's records, or a numeric
    summary metric's value."""
    runs = list(session.execute(select(Experiment.pk, Experiment.id, Experiment.name, Experiment.created_at)
                                .where(Experiment.project_pk == project_pk, Experiment.experiment == experiment,
                                       Experiment.deleted_at.is_(None))
                                .order_by(Experiment.pk.desc()).limit(CHART_RUNS)).all())
    runs.reverse()
    pks = [r.pk for r in runs]
    if not pks:
        return [], None, []
    kind, number, _, status = _parts(session)
    values: dict[tuple[int, str], float | None] = {}
    for pk, lab, avg in session.execute(
            select(SpanMetric.experiment_pk, SpanMetric.label, func.avg(number))
            .where(SpanMetric.experiment_pk.in_(pks), kind.in_(("boolean", "score")),
                   func.coalesce(status, "") != "ERROR")
            .group_by(SpanMetric.experiment_pk, SpanMetric.label)):
        values[(pk, lab)] = float(avg) if avg is not None else None
    labels = sorted({lab for _, lab in values})
    chosen = label if label in labels else (labels[0] if labels else None)
    points = [ChartPoint(r.id, r.name, r.created_at, values.get((r.pk, chosen)) if chosen else None) for r in runs]
    return labels, chosen, points


def svg_points(points: list[ChartPoint], *, width: int = 640, height: int = 160, pad: int = 28) -> dict[str, Any]:
    """Coordinates for an inline SVG line chart (the template draws it; nothing is loaded from outside)."""
    vals = [p.value for p in points if p.value is not None]
    if not vals:
        return {"width": width, "height": height, "dots": [], "path": "", "low": None, "high": None}
    low, high = min(vals), max(vals)
    if high == low:
        low, high = low - 0.5 if low else 0.0, high + 0.5 if high else 1.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    dots = []
    for i, p in enumerate(points):
        if p.value is None:
            continue
        x = pad + i * step
        y = height - pad - (p.value - low) / (high - low) * (height - 2 * pad)
        dots.append({"x": round(x, 1), "y": round(y, 1), "point": p})
    path = " ".join(f"{'M' if i == 0 else 'L'}{d['x']},{d['y']}" for i, d in enumerate(dots))
    return {"width": width, "height": height, "dots": dots, "path": path, "low": low, "high": high}
