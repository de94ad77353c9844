"""A run as the compare reads it: its facts (RunInfo) and its results as columns (RunData)."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from kennel.datasets.models import Dataset
from kennel.experiments.models import Experiment
from kennel.projects.models import Project


@dataclass(frozen=True, slots=True)
class RunInfo:
    pk: int
    id: str
    name: str
    experiment: str
    status: str | None
    error: str | None
    project_pk: int
    project_id: str
    dataset_id: str | None
    dataset_name: str | None
    dataset_version: int | None
    config: dict[str, Any]
    author_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class Result:
    """One run's result for one dataset record (assembled on demand, for the records being shown)."""

    span_id: str
    trace_id: str
    error: bool
    duration_ns: float
    values: dict[str, Any] = field(default_factory=dict)
    metric_errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RunData:
    """A run as columns: position i of span_ids, trace_ids and durations is the record index[i] names, and
    each metric is a {record id: value} column per type. No object per record: a 10,000-record run is a
    few lists and dicts, built in one pass over two narrow queries."""

    info: RunInfo
    index: dict[str, int]             # record id -> position in the lists below
    span_ids: list[str]
    trace_ids: list[str]
    durations: array[float]           # ns
    starts: array[int]                # start_ns of each record's span: a later span of the record must not precede it
    errored: frozenset[str]           # records whose span has status error
    metric_errors: dict[str, list[str]]  # record id -> labels whose value was an error or unusable
    # label -> (type -> how many values of that type): the label's type is its commonest.
    type_counts: dict[str, Counter[str]]
    # label -> type -> {record id: value}: what the cards and filters read, a dict lookup per record.
    columns: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    key: tuple[Any, ...] = ()  # what it was loaded from (see compare_load.fingerprint)
    record_of: dict[str, str] = field(default_factory=dict)  # span id -> record id, for the spans compared
    metric_rows: int = 0  # the run's metric rows read (summary ones included), to check a later refresh

    def column(self, label: str, kind: str) -> dict[str, Any]:
        return self.columns.get(label, {}).get(kind, {})

    @property
    def results(self) -> Results:
        return Results(self)

    def flagged(self, record_id: str) -> bool:
        """Whether the record's span errored or one of its metrics had no usable value."""
        return record_id in self.errored or record_id in self.metric_errors

    def result(self, record_id: str) -> Result | None:
        at = self.index.get(record_id)
        if at is None:
            return None
        values = {label: col[record_id] for label, kinds in self.columns.items() for col in kinds.values()
                  if record_id in col}
        return Result(self.span_ids[at], self.trace_ids[at], record_id in self.errored, self.durations[at], values,
                      list(self.metric_errors.get(record_id, ())))


class Results(Mapping[str, Result]):
    """A run's results by record id, each assembled when asked for."""

    __slots__ = ("_run",)

    def __init__(self, run: RunData) -> None:
        self._run = run

    def __getitem__(self, record_id: str) -> Result:
        found = self._run.result(record_id)
        if found is None:
            raise KeyError(record_id)
        return found

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._run.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._run.index)

    def __len__(self) -> int:
        return len(self._run.index)


# Runs -----------------------------------------------------------------------------------------------

def run_info(row: Any) -> RunInfo:
    e, project_id, dataset_id, dataset_name = row
    return RunInfo(e.pk, e.id, e.name, e.experiment, e.status, e.error, e.project_pk, project_id, dataset_id,
                   dataset_name, e.dataset_version, e.config if isinstance(e.config, dict) else {}, e.author_id,
                   e.created_at, e.updated_at)


def run_rows() -> Select[*tuple[Any, ...]]:
    """Runs with their project's and dataset's ids and the dataset's name: the rows run_info reads."""
    return (select(Experiment, Project.id, Dataset.id, Dataset.name)
            .join(Project, Project.pk == Experiment.project_pk)
            .outerjoin(Dataset, Dataset.pk == Experiment.dataset_pk))
