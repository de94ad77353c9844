"""A run's compare columns stored in the database, so that the first compare of a run in a server process
reads one row instead of every span and metric of the run.

Reading a 10,000-record run from its spans and metrics costs about 100-150 ms of Python (50,000 rows made
into objects, then into columns); three runs did not fit the compare's 300 ms in a new process, or in any
process after its cache let the runs go, or behind a load balancer where each process has its own cache.
The stored form is the RunData itself (compare_load), encoded: positions into the run's list of records
instead of repeated record ids, as orjson (1.6 MB for 10,000 records and 40,000 metrics; zlib would make it
a third of that, and add half as much again to the ~9 ms it takes to decode).

It is a cache, never the truth: a stored run carries the fingerprint it was read at (compare_load), and a
compare uses it only as compare_load uses a run held in memory: as it is if the fingerprint is the same,
brought up to date with what the run gained since, or not at all. It is written after a commit, off the
request path (db/maintenance.UpkeepRunner): a few seconds after an intake that changed a run last did (see
StoreRun), and after a compare had to read a run that was stored stale or not at all. Bump FORMAT when RunData or what compare_load reads into it changes meaning.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from kennel.db.base import utcnow
from kennel.db.maintenance import request_upkeep
from kennel.db.session import unit_of_work
from kennel.experiments.compare_run import RunData, RunInfo, run_info, run_rows
from kennel.experiments.models import Experiment, RunColumns
from kennel.spans.models import SpanMetric

log = logging.getLogger("kennel")

FORMAT = 1
# Below this many rows (spans and metrics) a run is read from scratch in a few milliseconds.
MIN_ROWS = 2_000
# Above it the stored form (1.6 MB for 10,000 spans and 40,000 metrics) would pass 60 MB, each time rewritten
# whole; such a run is read from its rows, as before there was a stored form.
MAX_ROWS = 2_000_000


def worth_storing(run: RunData) -> bool:
    return MIN_ROWS <= len(run.span_ids) + run.metric_rows <= MAX_ROWS


def encode(run: RunData) -> bytes | None:
    """The run as bytes, or None when it holds a number JSON cannot carry (orjson would write NaN as null)."""
    position = run.index.__getitem__
    records = sorted(run.index, key=position)  # by position: decode gives record i position i
    columns = []
    for label, kinds in run.columns.items():
        for kind, column in kinds.items():
            values = list(column.values())
            if kind == "score" and not all(map(math.isfinite, values)):
                return None
            columns.append((label, kind, list(map(position, column)), values))
    if not all(map(math.isfinite, run.durations)):
        return None
    body = {"records": records, "span_ids": run.span_ids, "trace_ids": run.trace_ids,
            "durations": run.durations.tolist(), "starts": run.starts.tolist(),
            "errored": sorted(map(position, run.errored)),
            "metric_errors": [(position(rid), labels) for rid, labels in run.metric_errors.items()],
            "columns": columns, "metric_rows": run.metric_rows, "key": run.key}
    return orjson.dumps(body)


def decode(blob: bytes, info: RunInfo) -> RunData:
    body = orjson.loads(blob)
    records: list[str] = body["records"]
    record = records.__getitem__
    span_ids: list[str] = body["span_ids"]
    columns: dict[str, dict[str, dict[str, Any]]] = {}
    for label, kind, positions, values in body["columns"]:
        columns.setdefault(label, {})[kind] = dict(zip(map(record, positions), values, strict=True))
    record_of = dict(zip(span_ids, records, strict=True))
    record_of.pop("", None)  # as compare_load reads a run: the empty span id is the summary metrics'
    (span_max, span_count), metric_max, version = body["key"]
    return RunData(
        info, dict(zip(records, range(len(records)), strict=True)), span_ids, body["trace_ids"], array("d", body["durations"]),
        array("q", body["starts"]), frozenset(map(record, body["errored"])),
        {record(at): labels for at, labels in body["metric_errors"]},
        {label: Counter({kind: len(col) for kind, col in kinds.items()}) for label, kinds in columns.items()},
        columns, key=((span_max, span_count), metric_max, version), record_of=record_of,
        metric_rows=body["metric_rows"])


def stored(session: Session, info: RunInfo) -> RunData | None:
    """The run as stored, if it is and in this FORMAT."""
    row = session.execute(select(RunColumns.data).where(RunColumns.experiment_pk == info.pk,
                                                        RunColumns.format == FORMAT)).first()
    if row is None:
        return None
    try:
        return decode(row[0], info)
    except (ValueError, KeyError, TypeError, IndexError):
        # Written by this code it decodes; anything else is passed over: the run is read from its rows.
        log.warning("the stored compare columns of run %s do not decode; reading the run afresh", info.id)
        return None


def save(session: Session, pk: int, key: str, blob: bytes) -> None:
    """Insert or replace; the last writer wins (a compare checks what it reads against the database)."""
    values = {"experiment_pk": pk, "format": FORMAT, "key": key, "data": blob, "updated_at": utcnow()}
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RunColumns).values(**values)
    session.execute(stmt.on_conflict_do_update(index_elements=["experiment_pk"],
                                               set_={k: v for k, v in values.items() if k != "experiment_pk"}))


@dataclass(frozen=True)
class StoreRun:
    """An upkeep job: store the run's columns as they are now, unless they are stored so already. It runs
    once a run's intake pauses (3 s without a change), at least every 30 s during a long one, and its runs
    take at most a fifth of the time (db/maintenance.UnitsJob): a run is rewritten whole, so storing it
    after each batch of a long intake would write it over and over, and compete with the intake and the
    reads meanwhile. Its first run in a process reads the whole run (~100-150 ms of CPU for 10,000 records):
    after a 1 s pause that fell among the reads of the run's events that often follow its intake."""

    experiment_id: str
    quiet: ClassVar[float] = 3.0
    max_wait: ClassVar[float] = 30.0
    cost_factor: ClassVar[float] = 4.0
    flush_on_stop: ClassVar[bool] = True

    def run(self, factory: sessionmaker[Session]) -> None:
        # Imported here: compare_load asks for this job, and this job reads through compare_load.
        from kennel.experiments.compare_load import fingerprint, load_run
        with unit_of_work(factory, write=False) as session:
            row = session.execute(run_rows().where(Experiment.id == self.experiment_id,
                                                   Experiment.deleted_at.is_(None))).first()
            if row is None:
                return  # spans tagged with an experiment that does not exist (yet), or a deleted one
            info = run_info(tuple(row))
            (_, spans), _, _ = fingerprint(session, info)
            metrics = session.execute(select(func.count()).where(SpanMetric.experiment_pk == info.pk)).scalar() or 0
            if spans + metrics < MIN_ROWS:
                return  # not worth storing: and not worth reading either, to find that out
            run = load_run(session, info, store=False)
            if not worth_storing(run):
                return
            held = session.execute(select(RunColumns.key).where(RunColumns.experiment_pk == info.pk,
                                                                RunColumns.format == FORMAT)).scalar()
            key = key_text(run.key)
            if held == key:
                return
            blob = encode(run)
        if blob is not None:
            with unit_of_work(factory, write=True) as session:
                if session.get(Experiment, info.pk) is not None:  # deleted meanwhile: its row went with it
                    save(session, info.pk, key, blob)


def key_text(key: tuple[Any, ...]) -> str:
    return orjson.dumps(key).decode()


def request_store(session: Session, experiment_ids: set[str] | list[str]) -> None:
    """Store these runs' columns once the session commits (a change to them, or a compare that read them
    without a stored form to start from)."""
    for experiment_id in experiment_ids:
        request_upkeep(session, StoreRun(experiment_id))

