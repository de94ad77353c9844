"""Comparisons as wire dicts (the /api/kennel/v1/experiments/... answers)."""

from __future__ import annotations

from typing import Any

from kennel.experiments.compare import Card, Comparison
from kennel.experiments.compare_rows import Row
from kennel.experiments.compare_run import RunInfo
from kennel.experiments.overview import RunRow
from kennel.jsonapi import iso


def run_dict(i: RunInfo, *, records: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": i.id, "name": i.name, "experiment": i.experiment, "status": i.status,
                           "error": i.error, "project_id": i.project_id, "dataset_id": i.dataset_id,
                           "dataset_name": i.dataset_name, "dataset_version": i.dataset_version, "config": i.config,
                           "author_id": i.author_id, "created_at": iso(i.created_at)}
    if records is not None:
        out["records"] = records
    return out


def list_item(row: RunRow) -> dict[str, Any]:
    return {"id": row.info.id, "type": "experiment_runs",
            "attributes": {**run_dict(row.info), "author": row.author, "summary_metrics": row.summary}}


def card_dict(card: Card, *, with_tests: bool = True) -> dict[str, Any]:
    figures = []
    for f in card.figures:
        fig: dict[str, Any] = {"run_id": f.run_id, "n": f.n}
        if card.kind == "categorical":
            fig["distribution"] = dict(f.distribution)
        else:
            fig["pass_rate" if card.kind == "boolean" else "mean"] = f.value
        if f.counts:
            fig["delta"] = f.delta
            fig["counts"] = f.counts
            if with_tests and card.kind != "categorical":
                fig["test"] = f.test.as_dict() if f.test is not None else None
                if f.test is None:
                    fig["test_note"] = "no paired values: no record has a value in both runs"
        figures.append(fig)
    return {"metric": card.label, "type": card.kind, "higher_is_better": card.higher_is_better, "runs": figures}


def row_dict(row: Row) -> dict[str, Any]:
    return {"record_id": row.record_id, "input": row.input, "expected_output": row.expected_output,
            "runs": [{"run_id": c.run_id, "missing": True} if not c.present else {
                "run_id": c.run_id, "missing": False, "span_id": c.span_id, "trace_id": c.trace_id,
                "output": c.output, "error": c.error or None, "duration_ms": c.duration_ms,
                "metrics": c.values, "metric_errors": c.metric_errors, "outcomes": c.outcomes}
                for c in row.cells]}


def head(comp: Comparison) -> dict[str, Any]:
    return {"baseline": comp.baseline.info.id,
            "runs": [run_dict(r.info, records=len(r.results)) for r in comp.runs],
            "metrics": [{"metric": label, "type": kind, "higher_is_better": comp.higher.get(label, True)}
                        for label, kind in comp.labels.items()],
            "records": len(comp.record_ids), "warnings": comp.warnings}
