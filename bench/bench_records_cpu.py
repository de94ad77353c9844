#!/usr/bin/env python
"""CPU time of record operations on SQLite, two versions of the code interleaved process by process.

On a shared, loaded machine wall-clock latency swings by a factor of two from one minute to the next.
SQLite works inside the calling process, so that process's CPU time (time.process_time) counts all of
an operation's work, Python and database alike, and is far steadier. Each run is a fresh process on a
fresh SQLite file driving the services directly (no server): 1,000 inserts with ids, 1,000 appends
deduplicated by content, 100 updates, a delete of 100 answered without content, a page of 1,000 of the
current version and one of the first version. Runs alternate A B A B ...; the medians of each run are
printed, then the median over runs and the ratio B/A.

  .venv/bin/python bench/bench_records_cpu.py --a main            # B: the working tree
  .venv/bin/python bench/bench_records_cpu.py --a main --b HEAD --runs 5 --rounds 15
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from bench_datasets import snapshot_src

# Runs in the measured process, with the version under test first on sys.path.
WORKLOAD = r'''
import json, statistics, sys, time
from kennel.datasets.records import change_records, list_records
from kennel.datasets.schemas import RecordUpdateIn
from kennel.datasets.service import create_or_get_dataset
from kennel.db.engine import make_engine
from kennel.db.migrate import upgrade
from kennel.db.session import make_sessionmaker, unit_of_work
from kennel.keys.service import Actor
from kennel.projects.service import create_or_get_project
try:
    from kennel.datasets.plan import NewRecord
except ImportError:  # before the records core had a planning module
    from kennel.datasets.records import NewRecord

engine = make_engine(sys.argv[1])
upgrade(engine)
factory = make_sessionmaker(engine)
actor = Actor(id="bench", name="bench")
with unit_of_work(factory, write=True) as s:
    project = create_or_get_project(s, name="p", description=None, author_id="bench")[0]
    dataset = create_or_get_dataset(s, project_id=project.id, name="d", description=None, metadata=None,
                                    actor=actor)[0]
    pid, did = project.id, dataset.id
times = {}

def timed(kind, fn):
    began = time.process_time()
    fn()
    times.setdefault(kind, []).append((time.process_time() - began) * 1000)

def write(**change):
    with unit_of_work(factory, write=True) as s:
        change_records(s, project_id=pid, dataset_id=did, actor=actor, **change)

def read(version=None):
    with unit_of_work(factory, write=False) as s:
        list_records(s, project_id=pid, dataset_id=did, version=version, tags=None, cursor=None, limit=1000)

def record(key):
    return NewRecord(id=key, input={"q": key, "text": "x" * 600}, expected_output={"a": "y" * 300},
                     metadata={"m": 1}, tags=["bench"])

for i in range(int(sys.argv[2])):
    keys = [f"r{i}-{k}" for k in range(1000)]
    timed("insert 1,000 with ids", lambda: write(inserts=[record(k) for k in keys]))
    timed("append 1,000 deduplicated", lambda: write(inserts=[
        NewRecord(id=None, input={"q": f"{i}-{k}", "text": "x" * 900}) for k in range(1000)]))
    timed("update 100", lambda: write(updates=[RecordUpdateIn(id=k, input={"changed": k}) for k in keys[:100]]))
    timed("delete 100", lambda: write(deletes=keys[100:200], report_content=False))
    timed("page 1,000", lambda: read())
    timed("old version page 1,000", lambda: read(1))
print(json.dumps({kind: statistics.median(values) for kind, values in times.items()}))
'''


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="git ref of side A")
    ap.add_argument("--b", default=None, help="git ref of side B (default: the working tree)")
    ap.add_argument("--runs", type=int, default=3, help="processes per side, alternating")
    ap.add_argument("--rounds", type=int, default=15, help="rounds of the operations per process")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kennel-cpu-") as tmp:
        paths = {}
        for label, ref in (("A", args.a), ("B", args.b)):
            if ref:
                (Path(tmp) / label).mkdir()
                paths[label] = str(snapshot_src(ref, Path(tmp) / label))
            else:
                paths[label] = str(ROOT / "src")
        results: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
        for run in range(args.runs):
            for label in ("A", "B") if run % 2 == 0 else ("B", "A"):
                db = Path(tmp) / f"{label}-{run}.db"
                out = subprocess.run([sys.executable, "-c", WORKLOAD, f"sqlite:///{db}", str(args.rounds)],
                                     env={"PYTHONPATH": paths[label], "PATH": "/usr/bin:/bin"},
                                     capture_output=True, text=True, check=True)
                results[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
                print(label, {k: round(v, 2) for k, v in results[label][-1].items()}, flush=True)
    summary = {"a": args.a, "b": args.b or "working tree", "runs": args.runs, "rounds": args.rounds}
    for kind in results["A"][0]:
        a = statistics.median(r[kind] for r in results["A"])
        b = statistics.median(r[kind] for r in results["B"])
        summary[kind] = {"A_cpu_ms": round(a, 2), "B_cpu_ms": round(b, 2), "B_over_A": round(b / a, 3)}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
