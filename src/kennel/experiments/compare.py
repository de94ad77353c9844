"""Comparing experiment runs record by record: metric cards, paired tests, aligned rows.

The runs are loaded as columns and cached by compare_load. Records a run has no value for are "missing":
shown as missing, never counted as passing or failing, and left out of every paired figure.
"""

from __future__ import annotations

import math
import operator
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from kennel.errors import Invalid, NotFound
from kennel.experiments import stats
from kennel.experiments.compare_load import CACHE_RUNS, cache_lock, load_run
from kennel.experiments.compare_run import Result, RunData, RunInfo, run_info, run_rows
from kennel.experiments.models import Experiment, MetricDirection

MAX_RUNS = 10
VALUE_TYPES = ("boolean", "score", "categorical")
OUTCOMES = ("improved", "regressed", "unchanged", "changed", "missing")


# Runs -----------------------------------------------------------------------------------------------

def run_infos(session: Session, run_ids: Sequence[str], *, parameter: str = "runs") -> list[RunInfo]:
    """The live runs named, in the order named; unknown ones and runs of different projects are a 400/404."""
    ids = [r.strip() for r in run_ids if r.strip()]
    if not ids:
        raise Invalid("name the runs to compare: runs=<id>,<id>", parameter=parameter)
    if len(set(ids)) != len(ids):
        raise Invalid("a run is named twice", parameter=parameter)
    if len(ids) > MAX_RUNS:
        raise Invalid(f"at most {MAX_RUNS} runs can be compared at once, got {len(ids)}", parameter=parameter)
    rows = session.execute(run_rows().where(Experiment.id.in_(ids), Experiment.deleted_at.is_(None))).all()
    found = {r[0].id: run_info(tuple(r)) for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"run(s) not found: {', '.join(repr(m) for m in missing)}", parameter=parameter)
    infos = [found[i] for i in ids]
    projects = {i.project_id for i in infos}
    if len(projects) > 1:
        raise Invalid("the runs belong to different projects; compare runs of one project", parameter=parameter)
    return infos


# Directions -----------------------------------------------------------------------------------------

def directions(session: Session, project_pk: int) -> dict[str, bool]:
    return dict(session.execute(select(MetricDirection.label, MetricDirection.higher_is_better)
                                .where(MetricDirection.project_pk == project_pk)).all())


def set_direction(session: Session, *, project_id: str, label: str, higher_is_better: bool) -> None:
    from kennel.db.base import utcnow
    from kennel.projects.service import get_project

    project = get_project(session, project_id=project_id)
    row = session.scalars(select(MetricDirection).where(MetricDirection.project_pk == project.pk,
                                                        MetricDirection.label == label)).first()
    if row is None:
        session.add(MetricDirection(project_pk=project.pk, label=label, higher_is_better=higher_is_better,
                                    updated_at=utcnow()))
    else:
        row.higher_is_better = higher_is_better
        row.updated_at = utcnow()
    session.flush()


# The comparison ---------------------------------------------------------------------------------------

@dataclass(slots=True)
class RunFigure:
    run_id: str
    n: int                      # records with a value
    value: float | None         # pass rate or mean; None for categorical or no values
    distribution: list[tuple[str, int]] = field(default_factory=list)
    delta: float | None = None  # against the baseline's value
    counts: dict[str, int] = field(default_factory=dict)
    test: stats.TestResult | None = None


@dataclass(slots=True)
class Card:
    label: str
    kind: str
    higher_is_better: bool
    figures: list[RunFigure]


@dataclass
class Comparison:
    runs: list[RunData]
    baseline: RunData
    labels: dict[str, str]          # label -> type, in card order
    higher: dict[str, bool]
    record_ids: list[str]           # the union of the runs' records, sorted
    warnings: list[str]

    def run(self, run_id: str) -> RunData:
        for r in self.runs:
            if r.info.id == run_id:
                return r
        raise KeyError(run_id)


def compare(session: Session, run_ids: Sequence[str], baseline_id: str | None, *,
            metrics: Sequence[str] = ()) -> Comparison:
    infos = run_infos(session, run_ids)
    if len(infos) < 2:
        raise Invalid("compare needs at least two runs", parameter="runs")
    baseline_id = baseline_id or min(infos, key=lambda i: i.pk).id
    if baseline_id not in {i.id for i in infos}:
        raise Invalid(f"baseline {baseline_id!r} is not one of the runs compared", parameter="baseline")
    # The baseline first, then the others in the order named: cards and columns read left to right from it.
    infos.sort(key=lambda i: i.id != baseline_id)
    runs = [load_run(session, i) for i in infos]
    baseline = runs[0]
    counts: dict[str, Counter[str]] = {}
    for r in runs:
        for label, c in r.type_counts.items():
            counts.setdefault(label, Counter()).update(c)
    labels = {label: c.most_common(1)[0][0] for label, c in sorted(counts.items())
              if c.most_common(1)[0][0] in VALUE_TYPES}
    if metrics:
        unknown = [m for m in metrics if m not in labels]
        if unknown:
            raise Invalid(f"unknown metric(s) {', '.join(repr(u) for u in unknown)}; these runs have: "
                          f"{', '.join(labels) or 'no metrics'}", parameter="metrics")
        labels = {m: labels[m] for m in metrics}
    higher = {**dict.fromkeys(labels, True), **directions(session, infos[0].project_pk)}
    return Comparison(runs, baseline, labels, higher, _record_ids(runs), _warnings(runs))


_unions: OrderedDict[tuple[Any, ...], list[str]] = OrderedDict()


def _record_ids(runs: list[RunData]) -> list[str]:
    """The sorted union of the runs' records, kept for as long as the runs are unchanged (paging re-reads it)."""
    key = tuple((r.info.id, r.key) for r in sorted(runs, key=lambda r: r.info.id))
    with cache_lock:
        hit = _unions.get(key)
        if hit is not None:
            _unions.move_to_end(key)
            return hit
    ids: set[str] = set()
    for r in runs:
        ids.update(r.index)
    union = sorted(ids)
    with cache_lock:
        _unions[key] = union
        while len(_unions) > CACHE_RUNS:
            _unions.popitem(last=False)
    return union


def _warnings(runs: list[RunData]) -> list[str]:
    out = []
    datasets = {(r.info.dataset_id, r.info.dataset_name) for r in runs}
    if len(datasets) > 1:
        out.append("These runs used different datasets: " + "; ".join(
            f"{r.info.name} on {r.info.dataset_name or 'no dataset'}" for r in runs)
            + ". Only records both runs have are paired.")
    elif len({r.info.dataset_version for r in runs}) > 1:
        out.append("These runs used different versions of the dataset: " + "; ".join(
            f"{r.info.name} on version {r.info.dataset_version}" for r in runs)
            + ". Records may have changed between versions.")
    return out


def pick_run(comp: Comparison, run_id: str | None, field: str, *, pointer: str | None = None) -> str:
    """One of the compared runs (default: the first after the baseline), or a 400 naming `field`."""
    ids = [r.info.id for r in comp.runs]
    chosen = run_id or next(i for i in ids if i != comp.baseline.info.id)
    if chosen not in ids:
        detail = f"{field} {chosen!r} is not one of the runs compared"
        raise Invalid(detail, pointer=pointer) if pointer else Invalid(detail, parameter=field)
    return chosen


def value_of(result: Result | None, label: str, kind: str) -> Any:
    """The record's value of this metric in this run, or None (missing) if absent or not of the metric's type."""
    if result is None:
        return None
    v = result.values.get(label)
    if kind == "boolean":
        return v if isinstance(v, bool) else None
    if kind == "score":
        return v if isinstance(v, float) and not isinstance(v, bool) else None
    return v if isinstance(v, str) else None


def outcome(base: Any, other: Any, kind: str, higher: bool) -> str:
    if base is None or other is None:
        return "missing"
    if base == other:
        return "unchanged"
    if kind == "categorical":
        return "changed"
    better = (other > base) if higher else (other < base)
    return "improved" if better else "regressed"


def _counts(base: dict[str, Any], other: dict[str, Any], total: int, kind: str,
            higher: bool) -> tuple[dict[str, int], list[Any], list[Any]]:
    """Outcome counts over the comparison's `total` records, and the paired values (baseline's, other's) of
    the records both runs have a value for. map() over operator functions keeps the per-record work in C."""
    # The other run's records, each with the baseline's value (None where it has none: a column holds no None).
    a: list[Any] = list(map(base.get, other))
    b = list(other.values())
    if None in a:
        both = list(map(operator.is_not, a, repeat(None)))
        a, b = list(compress(a, both)), list(compress(b, both))
    if len(a) <= stats.BOOTSTRAP_MAX:
        # Record order, so that the bootstrap's resamples (and so its interval) never depend on arrival order.
        keys = sorted(rid for rid in other if rid in base)
        a, b = list(map(base.__getitem__, keys)), list(map(other.__getitem__, keys))
    counts = dict.fromkeys(OUTCOMES, 0)
    counts["missing"] = total - len(a)
    same = sum(map(operator.eq, a, b))
    counts["unchanged"] = same
    if kind == "categorical":
        counts["changed"] = len(a) - same
    else:
        up = sum(map(operator.gt, b, a))
        down = len(a) - same - up
        counts["improved"], counts["regressed"] = (up, down) if higher else (down, up)
    return counts, a, b


def cards(comp: Comparison, *, with_tests: bool = True) -> list[Card]:
    out = []
    base = comp.baseline
    total = len(comp.record_ids)
    for label, kind in comp.labels.items():
        higher = comp.higher.get(label, True)
        base_values = base.column(label, kind)
        figures = []
        base_value = None
        for run in comp.runs:
            values = run.column(label, kind)
            fig = RunFigure(run.info.id, len(values), None)
            if kind == "categorical":
                fig.distribution = Counter(values.values()).most_common()
            elif values:
                fig.value = math.fsum(values.values()) / len(values)
            if run is base:
                base_value = fig.value
            else:
                if fig.value is not None and base_value is not None:
                    fig.delta = fig.value - base_value
                fig.counts, a, b = _counts(base_values, values, total, kind, higher)
                if with_tests and a and kind != "categorical":
                    fig.test = stats.mcnemar_exact(a, b) if kind == "boolean" else stats.paired_mean_test(a, b)
            figures.append(fig)
        out.append(Card(label, kind, higher, figures))
    return out


def config_diff(comp: Comparison) -> tuple[list[tuple[str, list[str]]], int]:
    """(key, each run's value as text) for config keys whose values differ, and how many keys agree."""
    flat = [_flatten(r.info.config) for r in comp.runs]
    keys = sorted(set().union(*flat))
    differ, same = [], 0
    for key in keys:
        values = [f.get(key, "—") for f in flat]
        if len(set(values)) > 1:
            differ.append((key, values))
        else:
            same += 1
    return differ, same


def _flatten(config: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(config, dict) and config:
        out: dict[str, str] = {}
        for k, v in config.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if not prefix:
        return {}
    return {prefix: config if isinstance(config, str) else orjson.dumps(config).decode()}
