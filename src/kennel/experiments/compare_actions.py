"""What a comparison can be turned into: an annotation queue of regressions, a pairwise "A or B or tie"
queue, a new dataset version with a run's outputs as expected outputs, and Markdown or CSV exports.

Each action calls the public services of the packages it writes to (annotations, datasets), inside the
request's one unit of work: a failure anywhere leaves nothing written.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.orm import Session, sessionmaker

from kennel.annotations import service as queues
from kennel.annotations.schemas import AnnotationSchemaIn, LabelSchemaIn, QueueAttributesIn
from kennel.datasets.records import NewRecord, change_records
from kennel.errors import Invalid
from kennel.experiments import stats
from kennel.experiments.compare import Card, Comparison
from kennel.experiments.compare_rows import RowQuery, matching, pretty, rows
from kennel.experiments.compare_run import RunData
from kennel.keys.service import Actor

PAIRWISE_VALUES = ["a", "b", "tie"]
MAX_SELECTION = 10_000


def selection(comp: Comparison, q: RowQuery, record_ids: Sequence[str] | None, *, pointer: str) -> list[str]:
    """The records named (each must be one of the comparison's), or else those the filters select."""
    if record_ids is not None:
        known = set(comp.record_ids)
        unknown = [r for r in record_ids if r not in known]
        if unknown:
            raise Invalid(f"record(s) not in these runs: {', '.join(repr(u) for u in unknown[:5])}"
                          + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""), pointer=pointer)
        chosen = list(dict.fromkeys(record_ids))
    else:
        chosen = matching(comp, q)
    if not chosen:
        raise Invalid("the selection is empty: no record matches; nothing was changed", pointer=pointer)
    if len(chosen) > MAX_SELECTION:
        raise Invalid(f"at most {MAX_SELECTION:,} records per action, got {len(chosen):,}", pointer=pointer)
    return chosen


def _add(session: Session, queue_id: str, items: list[dict[str, Any]]) -> int:
    added = 0
    for at in range(0, len(items), queues.MAX_INTERACTIONS_PER_REQUEST):
        added += sum(1 for _, existed in queues.add_interactions(
            session, queue_id=queue_id, items=items[at:at + queues.MAX_INTERACTIONS_PER_REQUEST]) if not existed)
    return added


@dataclass
class QueueResult:
    queue_id: str
    created: bool
    added: int
    skipped: list[str]  # records the run has no trace for


def send_to_queue(session: Session, comp: Comparison, record_ids: list[str], *, run_id: str, queue_id: str | None,
                  queue_name: str | None, actor: Actor) -> QueueResult:
    """The records' traces in run `run_id`, as experiment_trace interactions of a queue (new if named)."""
    run = comp.run(run_id)
    traces = [run.results[rid].trace_id for rid in record_ids if rid in run.results]
    skipped = [rid for rid in record_ids if rid not in run.results]
    if not traces:
        raise Invalid(f"run {run.info.name!r} has no trace for any selected record; nothing was changed",
                      pointer="/data/attributes/record_ids")
    created = False
    if queue_id:
        queues.get_queue(session, queue_id=queue_id)
    else:
        if not queue_name:
            raise Invalid("name an existing queue (queue_id) or a new one (queue_name)",
                          pointer="/data/attributes/queue_id")
        labels = AnnotationSchemaIn(label_schemas=[LabelSchemaIn(
            name="regression", type="boolean", has_reasoning=True,
            description="Is this output worse than the baseline's?")])
        queue, _ = queues.create_queue(session, attrs=QueueAttributesIn(
            project_id=comp.baseline.info.project_id, name=queue_name, annotation_schema=labels,
            description=f"Records of {run.info.name} compared with {comp.baseline.info.name}"), actor=actor)
        queue_id, created = queue.id, True
    added = _add(session, queue_id, [{"type": "experiment_trace", "content_id": t} for t in traces])
    return QueueResult(queue_id, created, added, skipped)


def _block(label: str, value: Any) -> list[dict[str, Any]]:
    body = ({"type": "text", "content": value} if isinstance(value, str)
            else {"type": "json", "content": value if value is not None else None})
    return [{"type": "header", "content": label, "level": "md"}, {**body, "label": label}]


def pairwise_queue(session: Session, comp: Comparison, record_ids: list[str], *, a: str, b: str, name: str,
                   actor: Actor) -> QueueResult:
    """A new queue asking "A or B or tie" for each record both runs have: input, expected output, then A's and
    B's outputs side by side (display blocks); the label `preference` takes a, b or tie."""
    if a == b:
        raise Invalid("a pairwise queue needs two different runs", pointer="/data/attributes/b")
    run_a, run_b = comp.run(a), comp.run(b)
    both = [rid for rid in record_ids if rid in run_a.results and rid in run_b.results]
    skipped = [rid for rid in record_ids if rid not in both]
    if not both:
        raise Invalid("no selected record has a result in both runs; nothing was changed",
                      pointer="/data/attributes/record_ids")
    labels = AnnotationSchemaIn(label_schemas=[LabelSchemaIn(
        name="preference", type="categorical", values=PAIRWISE_VALUES, has_reasoning=True,
        description=f"Which output is better? a = {run_a.info.name}, b = {run_b.info.name}, or tie")])
    queue, _ = queues.create_queue(session, attrs=QueueAttributesIn(
        project_id=comp.baseline.info.project_id, name=name, annotation_schema=labels,
        description=f"A = {run_a.info.name}, B = {run_b.info.name}"), actor=actor)
    items = []
    for row in rows(session, comp, both):
        cells = {c.run_id: c for c in row.cells}
        blocks = (_block("Input", row.input) + _block("Expected output", row.expected_output)
                  + _block("A", cells[a].output) + _block("B", cells[b].output))
        blocks.append({"type": "text", "content": f"record {row.record_id}", "label": "record"})
        items.append({"type": "display_block", "display_block": blocks})
    return QueueResult(queue.id, True, _add(session, queue.id, items), skipped)


@dataclass
class VersionResult:
    dataset_id: str
    version: int
    added: int
    skipped: list[str]


def to_dataset(session: Session, comp: Comparison, record_ids: list[str], *, run_id: str, dataset_id: str,
               actor: Actor) -> VersionResult:
    """The records, with run `run_id`'s output as their expected output, written to a dataset of the project as
    one new version. Into the run's own dataset a record keeps its id (its expected output is replaced);
    into another dataset each becomes a new record. Records the run failed on or has no output for are skipped."""
    run = comp.run(run_id)
    usable = [rid for rid in record_ids if rid in run.results and not run.results[rid].error]
    skipped = [rid for rid in record_ids if rid not in usable]
    same = dataset_id == run.info.dataset_id
    inserts = []
    for row in rows(session, comp, usable):
        cell = next(c for c in row.cells if c.run_id == run_id)
        inserts.append(NewRecord(id=row.record_id if same else None, input=row.input,
                                 expected_output=cell.output, metadata={"from_experiment": run.info.name}))
    if not inserts:
        raise Invalid("no selected record has an output in this run; nothing was changed",
                      pointer="/data/attributes/record_ids")
    dataset, result = change_records(session, project_id=comp.baseline.info.project_id, dataset_id=dataset_id,
                                     actor=actor, inserts=inserts, deduplicate=False,
                                     pointers=("/data/attributes/record_ids",) * 3)
    return VersionResult(dataset.id, result.version, len(inserts), skipped)


# Exports --------------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _figure(card: Card, value: float | None, distribution: list[tuple[str, int]]) -> str:
    if card.kind == "categorical":
        return ", ".join(f"{k} {n}" for k, n in distribution[:4]) or "—"
    if value is None:
        return "no values"
    return f"{value * 100:.1f}%" if card.kind == "boolean" else stats.fmt(value)


def markdown(comp: Comparison, cards: list[Card]) -> str:
    base = comp.baseline.info
    names = {r.info.id: r.info.name for r in comp.runs}
    lines = [f"### Experiment comparison: baseline `{_cell(base.name)}`", ""]
    for r in comp.runs:
        i = r.info
        lines.append(f"- `{_cell(i.name)}`{' (baseline)' if i.id == base.id else ''}: "
                     f"{_cell(i.dataset_name or 'no dataset')} v{i.dataset_version}, {len(r.results):,} records, "
                     f"status {i.status or '—'}")
    lines += [""] + [f"> ⚠️ {_cell(w)}" for w in comp.warnings] + ([""] if comp.warnings else [])
    lines += ["| Metric | Run | Value | Change | Improved | Regressed | Unchanged | Missing | Is it real? |",
              "|---|---|---|---|---|---|---|---|---|"]
    for card in cards:
        for f in card.figures:
            c = f.counts
            change = ("baseline" if f.run_id == base.id else
                      "—" if f.delta is None else
                      (f"{stats.fmt_signed(f.delta * 100)} pts" if card.kind == "boolean" else stats.fmt_signed(f.delta)))
            test = "" if f.run_id == base.id else (
                stats.describe(f.test, percent=card.kind == "boolean") if card.kind != "categorical"
                else f"{c.get('changed', 0)} changed")
            lines.append(f"| {_cell(card.label)} | {_cell(names[f.run_id])} | "
                         f"{_cell(_figure(card, f.value, f.distribution))} | {change} | "
                         + " | ".join(str(c.get(k, "")) for k in ("improved", "regressed", "unchanged", "missing"))
                         + f" | {_cell(test)} |")
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def csv_stream(factory: sessionmaker[Session], comp: Comparison) -> Iterator[bytes]:
    """Every record of the comparison, a line each; read and written 500 records at a time."""
    from kennel.db.session import unit_of_work

    header = ["record_id", "input", "expected_output"]
    order: list[RunData] = comp.runs
    for r in order:
        n = r.info.name
        header += [f"{n}:output", f"{n}:error", f"{n}:duration_ms"] + [f"{n}:{label}" for label in comp.labels]
    yield _csv_line(header)
    ids = comp.record_ids
    for at in range(0, len(ids), 500):
        with unit_of_work(factory, write=False) as session:
            chunk = rows(session, comp, ids[at:at + 500])
        for row in chunk:
            line = [row.record_id, _text(row.input), _text(row.expected_output)]
            for cell in row.cells:
                if not cell.present:
                    line += ["(missing)", "", ""] + [""] * len(comp.labels)
                    continue
                line += [pretty(cell.output) if cell.output is not None else "", cell.error,
                         f"{cell.duration_ms:.1f}" if cell.duration_ms is not None else ""]
                line += [_text(cell.values.get(label)) for label in comp.labels]
            yield _csv_line(line)


def _inert(cell: str) -> str:
    # Outputs come from models and people: a cell a spreadsheet would run as a formula gets a leading quote.
    return "'" + cell if cell[:1] in ("=", "+", "@", "\t", "\r") else cell


def _csv_line(values: list[str]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_inert(v) for v in values])
    return buf.getvalue().encode()
