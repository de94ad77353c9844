"""The experiment workspace over the API and in Chromium, over runs made by the real ddtrace.

One ddtrace scenario per backend (module scope): a dataset of 12 questions; run `old` on version 1;
then one record is changed (version 2) and runs `base` and `new` use it; `new` answers some questions
better and some worse, and raises on one. Evaluators: `exact` (boolean), `closeness` (score) and `tone`
(categorical). The figures the tests expect are computed here from the same answer tables, independently
of the server.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, insert, select

from kennel.db.engine import make_engine
from kennel.experiments.models import Experiment
from kennel.spans.models import Span, SpanMetric
from tests.conftest import Server, run_ddtrace, start_server, stop_server, unique
from tests.test_trace_view import person
from tests.test_web import SHOTS, browser, expect  # noqa: F401  - the Chromium fixture, shared

API = "/api/kennel/v1/experiments"
V2 = "/api/v2/llm-obs/v1"

QUESTIONS = [f"q{i:02d}" for i in range(12)]
EXPECTED = {q: f"answer {q}" for q in QUESTIONS}
# `new` fixes q00-q03 (wrong in base), breaks q04-q05 (right in base), raises on q06; the rest as base.
BASE_ANSWERS = {q: ("wrong" if q in ("q00", "q01", "q02", "q03") else EXPECTED[q]) for q in QUESTIONS}
NEW_ANSWERS = {**BASE_ANSWERS, **{q: EXPECTED[q] for q in ("q00", "q01", "q02", "q03")},
               "q04": "<script>window.__pwned=1</script>", "q05": "nope"}
OLD_ANSWERS = {q: "wrong" for q in QUESTIONS}
RAISES = "q06"
CHANGED = "q11"  # its expected output changes in version 2

SCRIPT = """
from ddtrace.llmobs._experiment import EvaluatorResult

QUESTIONS = {questions!r}
EXPECTED = {expected!r}
ds = LLMObs.create_dataset(dataset_name={ds!r}, description="qa", records=[
    {{"input_data": {{"q": q}}, "expected_output": EXPECTED[q], "metadata": {{"n": i}}}} for i, q in enumerate(QUESTIONS)])

def make(answers, raises=None):
    def task(input_data, config):
        if input_data["q"] == raises:
            raise ValueError("the model timed out")
        return answers[input_data["q"]]
    return task

def exact(input_data, output_data, expected_output):
    return output_data == expected_output

def closeness(input_data, output_data, expected_output):
    a, b = str(output_data), str(expected_output)
    return sum(1 for x, y in zip(a, b, strict=False) if x == y) / max(len(a), len(b), 1)

def accuracy(inputs, outputs, expected_outputs, evaluators_results):
    return sum(1 for v in evaluators_results["exact"] if v) / len(evaluators_results["exact"])

def tone(input_data, output_data, expected_output):
    return EvaluatorResult(value="polite" if str(output_data).startswith("answer") else "curt", reasoning="looked")

EVALS = dict(evaluators=[exact, closeness, tone], summary_evaluators=[accuracy])
old = LLMObs.experiment({name!r}, make({old!r}), ds, config={{"model": "m0", "temp": 0}}, **EVALS)
old.run()
at = [i for i, r in enumerate(ds) if r["input_data"]["q"] == {changed!r}][0]
ds.update(at, {{"expected_output": "answer {changed} (revised)"}})
ds.push()
base = LLMObs.experiment({name!r}, make({base!r}), ds, config={{"model": "m1", "temp": 0}}, **EVALS)
base.run()
new = LLMObs.experiment({name!r}, make({new!r}, {raises!r}), ds, config={{"model": "m2", "temp": 0}}, **EVALS)
new.run(raise_errors=False)
LLMObs.flush()
print(json.dumps({{"old": old._id, "base": base._id, "new": new._id, "dataset": ds._id, "version": ds.version,
                  "records": {{r["input_data"]["q"]: r["record_id"] for r in ds}}}}))
"""


@dataclass
class Scenario:
    old: str
    base: str
    new: str
    dataset: str
    project: str
    records: dict[str, str]  # question -> record id

    def rid(self, q: str) -> str:
        return self.records[q]


def closeness(a: str, b: str) -> float:
    return sum(1 for x, y in zip(a, b, strict=False) if x == y) / max(len(a), len(b), 1)


@pytest.fixture(scope="module")
def scenario(server: Server) -> Scenario:
    name = unique("qa")
    script = SCRIPT.format(questions=QUESTIONS, expected=EXPECTED, ds=unique("qa-ds"), name=name, old=OLD_ANSWERS,
                           base=BASE_ANSWERS, new=NEW_ANSWERS, raises=RAISES, changed=CHANGED)
    out = run_ddtrace(server, script)
    with server.client() as c:
        exp = c.get(f"{V2}/experiments", params={"filter[id]": out["base"]}).json()["data"][0]["attributes"]
    return Scenario(out["old"], out["base"], out["new"], out["dataset"], exp["project_id"], out["records"])


# The figures, computed here from the answer tables ----------------------------------------------------

def expected_in(version: int) -> dict[str, str]:
    return {**EXPECTED, CHANGED: f"answer {CHANGED} (revised)"} if version == 2 else dict(EXPECTED)


RUN_TABLES = {"old": (OLD_ANSWERS, 1, None), "base": (BASE_ANSWERS, 2, None), "new": (NEW_ANSWERS, 2, RAISES)}


def output(run: str, q: str) -> str | None:
    answers, _, raises = RUN_TABLES[run]
    return None if q == raises else answers[q]


def figures(run: str) -> dict[str, dict[str, Any]]:
    """Per question: exact, closeness, tone, as the evaluators computed them in ddtrace."""
    version = RUN_TABLES[run][1]
    exp = expected_in(version)
    return {q: {"exact": output(run, q) == exp[q], "closeness": closeness(str(output(run, q)), exp[q]),
                "tone": "polite" if str(output(run, q)).startswith("answer") else "curt"} for q in QUESTIONS}


def mcnemar(b: int, c: int) -> float:
    n = b + c
    return min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n) if n else 1.0


def counts(base: dict[str, Any], other: dict[str, Any], metric: str, higher: bool = True) -> dict[str, int]:
    out = Counter()
    for q in QUESTIONS:
        a, b = base[q][metric], other[q][metric]
        out["unchanged" if a == b else "improved" if (b > a) == higher else "regressed"] += 1
    return {k: out[k] for k in ("improved", "regressed", "unchanged")}


@dataclass
class Annotator:
    web: httpx.Client     # signed in
    headers: dict[str, str]  # a key pair of theirs


@pytest.fixture(scope="module")
def annotator(server: Server) -> Annotator:
    """One annotator per backend, with a browser session and a key pair (each CLI call is a process)."""
    from tests.conftest import kennel_cli

    web = person(server, "annotator")
    name = re.search(r'<summary>(\S+) <span class="role">', web.get("/queues").text).group(1)
    keys = orjson.loads(kennel_cli("keys", "create", "--name", "a", "--user", name, "--json", "--database-url",
                                   server.database_url).stdout)
    return Annotator(web, {"DD-API-KEY": keys["api_key"], "DD-APPLICATION-KEY": keys["app_key"]})


def get(http: httpx.Client, path: str, **params: Any) -> dict[str, Any]:
    r = http.get(API + path, params=params)
    assert r.status_code == 200, r.text
    return r.json()


def card(doc: dict[str, Any], metric: str) -> dict[str, dict[str, Any]]:
    found = next(c for c in doc["data"]["cards"] if c["metric"] == metric)
    return {f["run_id"]: f for f in found["runs"]}


# Over the API --------------------------------------------------------------------------------------

def test_cards_tests_and_warnings_match_figures_computed_independently(http: httpx.Client, scenario: Scenario) -> None:
    s = scenario
    doc = get(http, "/compare", runs=f"{s.new},{s.old},{s.base}", baseline=s.base)
    data = doc["data"]
    assert [r["id"] for r in data["runs"]] == [s.base, s.new, s.old], "the baseline first, then in the order named"
    assert data["records"] == 12
    assert any("different versions" in w for w in data["warnings"])
    assert data["config_diff"] == {"differ": [{"key": "model", "values": ["m1", "m2", "m0"]}], "same": 1}
    figs = {name: figures(name) for name in RUN_TABLES}
    ids = {"base": s.base, "new": s.new, "old": s.old}
    exact = card(doc, "exact")
    for name, run_id in ids.items():
        rate = sum(figs[name][q]["exact"] for q in QUESTIONS) / 12
        assert exact[run_id]["pass_rate"] == pytest.approx(rate)
        assert exact[run_id]["n"] == 12
    new = exact[s.new]
    assert new["counts"] == {**counts(figs["base"], figs["new"], "exact"), "changed": 0, "missing": 0}
    only_base = sum(1 for q in QUESTIONS if figs["base"][q]["exact"] and not figs["new"][q]["exact"])
    only_new = sum(1 for q in QUESTIONS if figs["new"][q]["exact"] and not figs["base"][q]["exact"])
    assert new["test"]["method"] == "mcnemar-exact" and new["test"]["discordant"] == [only_base, only_new]
    assert new["test"]["p_value"] == pytest.approx(mcnemar(only_base, only_new))
    assert new["delta"] == pytest.approx((only_new - only_base) / 12)
    close = card(doc, "closeness")[s.new]
    diffs = [figs["new"][q]["closeness"] - figs["base"][q]["closeness"] for q in QUESTIONS]
    assert close["mean"] == pytest.approx(sum(figs["new"][q]["closeness"] for q in QUESTIONS) / 12)
    assert close["delta"] == pytest.approx(sum(diffs) / 12)
    t = close["test"]
    assert t["method"] == "bootstrap" and t["n"] == 12 and t["ci_low"] <= t["delta"] <= t["ci_high"]
    assert t["delta"] == pytest.approx(sum(diffs) / 12)
    tone = card(doc, "tone")[s.new]
    assert tone["distribution"] == dict(Counter(figs["new"][q]["tone"] for q in QUESTIONS))
    assert tone["counts"]["changed"] == sum(figs["new"][q]["tone"] != figs["base"][q]["tone"] for q in QUESTIONS)
    # The same tests again: a fixed seed, so the same interval.
    again = get(http, "/compare/tests", runs=f"{s.base},{s.new}")
    assert card(again, "closeness")[s.new]["test"] == t
    assert again["data"]["baseline"] == s.base, "the oldest run is the default baseline"


def test_rows_filters_sorts_and_keyset_pages(http: httpx.Client, scenario: Scenario) -> None:
    s = scenario
    runs = f"{s.base},{s.new}"
    figs = {"base": figures("base"), "new": figures("new")}
    regressed = {s.rid(q) for q in QUESTIONS if figs["base"][q]["exact"] and not figs["new"][q]["exact"]}
    doc = get(http, "/compare/rows", runs=runs, metric="exact", outcome="regressed", vs=s.new)
    assert {r["record_id"] for r in doc["data"]} == regressed and doc["meta"]["matching"] == len(regressed)
    row = next(r for r in doc["data"] if r["record_id"] == s.rid(RAISES))
    cells = {c["run_id"]: c for c in row["runs"]}
    assert "the model timed out" in cells[s.new]["error"] and cells[s.new]["outcomes"]["exact"] == "regressed"
    assert row["input"] == {"q": RAISES} and row["expected_output"] == f"answer {RAISES}"
    assert {r["record_id"] for r in get(http, "/compare/rows", runs=runs, errors="true")["data"]} == {s.rid(RAISES)}
    failing = {s.rid(q) for q in QUESTIONS if not figs["new"][q]["exact"]}
    got = get(http, "/compare/rows", runs=runs, metric="exact", value="false", vs=s.new)["data"]
    assert {r["record_id"] for r in got} == failing
    high = {s.rid(q) for q in QUESTIONS if figs["new"][q]["closeness"] >= 0.5}
    got = get(http, "/compare/rows", runs=runs, metric="closeness", value=">=0.5", vs=s.new)["data"]
    assert {r["record_id"] for r in got} == high
    # Sorted by a metric, in pages of 5 that chain by cursor to exactly the whole set.
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"runs": runs, "sort": "closeness", "order": "desc", "vs": s.new, "limit": 5,
                  **({"cursor": cursor} if cursor else {})}
        page = get(http, "/compare/rows", **params)
        seen += page["data"]
        cursor = page["meta"]["after"]
        if not cursor:
            break
    assert [r["record_id"] for r in seen] == sorted(
        (s.rid(q) for q in QUESTIONS), key=lambda rid: (-next(
            figs["new"][q]["closeness"] for q in QUESTIONS if s.rid(q) == rid), rid))
    for order in ("asc", "desc"):
        ids, cursor = [], None
        while True:
            page = get(http, "/compare/rows", runs=runs, order=order, limit=5, **({"cursor": cursor} if cursor else {}))
            ids += [r["record_id"] for r in page["data"]]
            cursor = page["meta"]["after"]
            if not cursor:
                break
        assert ids == sorted(s.records.values(), reverse=order == "desc")


def manual_run(http: httpx.Client, project_id: str, dataset_id: str, records: dict[str, str]) -> str:
    """A run pushed over the events API: two records, and a metric no other run has."""
    r = http.post(f"{V2.replace('v2', 'unstable')}/experiments", json={"data": {"type": "experiments", "attributes": {
        "name": unique("manual"), "project_id": project_id, "dataset_id": dataset_id, "config": {"model": "hand"}}}})
    assert r.status_code == 200, r.text
    eid = r.json()["data"]["id"]
    spans, metrics = [], []
    for i, q in enumerate(("q00", "q04")):
        span_id, trace_id = str(7000 + i), unique("trace")
        spans.append({"trace_id": trace_id, "span_id": span_id, "parent_id": "undefined", "name": "task",
                      "start_ns": 1_700_000_000_000_000_000 + i, "duration": 1000, "status": "ok",
                      "meta": {"span": {"kind": "experiment"}, "input": {"q": q}, "output": f"answer {q}"},
                      "metrics": {}, "tags": [f"experiment_id:{eid}", f"dataset_record_id:{records[q]}"]})
        metrics.append({"span_id": span_id, "trace_id": trace_id, "timestamp_ms": 1, "metric_type": "score",
                        "label": "only_here", "score_value": 1.0})
        metrics.append({"span_id": span_id, "trace_id": trace_id, "timestamp_ms": 1, "metric_type": "boolean",
                        "label": "exact", "boolean_value": True})
    r = http.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {"type": "experiments",
                  "attributes": {"scope": "experiments", "spans": spans, "metrics": metrics}}})
    assert r.status_code == 202, r.text
    return eid


def test_missing_rows_are_never_counted_and_a_metric_without_pairs_says_so(http: httpx.Client,
                                                                            scenario: Scenario) -> None:
    s = scenario
    eid = manual_run(http, s.project, s.dataset, s.records)
    doc = get(http, "/compare", runs=f"{s.base},{eid}", baseline=s.base)
    exact = card(doc, "exact")[eid]
    assert exact["n"] == 2 and exact["pass_rate"] == 1.0
    assert exact["counts"]["missing"] == 10 and sum(exact["counts"].values()) == 12
    assert exact["test"]["n"] == 2
    only = card(doc, "only_here")[eid]
    assert only["test"] is None and "no paired values" in only["test_note"]
    assert card(doc, "only_here")[s.base]["n"] == 0 and card(doc, "only_here")[s.base]["mean"] is None
    rows = get(http, "/compare/rows", runs=f"{s.base},{eid}", outcome="missing", metric="exact", vs=eid)["data"]
    assert len(rows) == 10 and all(next(c for c in r["runs"] if c["run_id"] == eid)["missing"] for r in rows)


def test_a_change_made_through_another_server_is_in_the_next_compare(
        server: Server, http: httpx.Client, scenario: Scenario, tmp_path: Path) -> None:
    """Each server keeps loaded runs in memory: a span or metric written through server B must show in server
    A's next compare (a cache keyed by anything but the database's own rows would answer the old figures)."""
    s = scenario
    eid = manual_run(http, s.project, s.dataset, s.records)
    runs = f"{s.base},{eid}"
    before = card(get(http, "/compare", runs=runs, baseline=s.base), "exact")[eid]
    assert before["n"] == 2 and before["pass_rate"] == 1.0
    other = start_server(server.database_url, server.backend, tmp_path)
    try:
        with other.client() as b:
            trace_id = unique("trace")
            # A third record (q01, failing) and, for q00's span already there, a metric no run had.
            r = b.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {
                "type": "experiments", "attributes": {"scope": "experiments", "spans": [{
                    "trace_id": trace_id, "span_id": "7100", "parent_id": "undefined", "name": "task",
                    "start_ns": 1_700_000_000_000_000_100, "duration": 1000, "status": "ok",
                    "meta": {"span": {"kind": "experiment"}, "input": {"q": "q01"}, "output": "wrong"},
                    "metrics": {}, "tags": [f"experiment_id:{eid}", f"dataset_record_id:{s.records['q01']}"]}],
                    "metrics": [{"span_id": "7100", "trace_id": trace_id, "timestamp_ms": 1, "metric_type": "boolean",
                                 "label": "exact", "boolean_value": False}]}}})
            assert r.status_code == 202, r.text
    finally:
        stop_server(other)
    after = get(http, "/compare", runs=runs, baseline=s.base)
    exact = card(after, "exact")[eid]
    assert exact["n"] == 3 and exact["pass_rate"] == pytest.approx(2 / 3)
    assert exact["counts"]["missing"] == 9
    assert next(r for r in after["data"]["runs"] if r["id"] == eid)["records"] == 3
    # A metric alone (no new span) reaches the next compare too: a second label on q01's span, via server A.
    r = http.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {
        "type": "experiments", "attributes": {"scope": "experiments", "metrics": [
            {"span_id": "7100", "trace_id": trace_id, "timestamp_ms": 1, "metric_type": "score",
             "label": "only_here", "score_value": 0.0}]}}})
    assert r.status_code == 202, r.text
    only = card(get(http, "/compare", runs=runs, baseline=s.base), "only_here")[eid]
    assert only["n"] == 3 and only["mean"] == pytest.approx(2 / 3)


def test_metrics_added_to_a_loaded_run_count_only_where_it_had_none_and_a_late_one_is_not_lost(
        server: Server, http: httpx.Client, scenario: Scenario) -> None:
    """A loaded run takes in the metrics added since without being read again: a record's first metric of a
    label still counts. A metric that commits late, with a pk below the newest one already read, is not lost
    (the run is then read afresh)."""
    s = scenario
    eid = manual_run(http, s.project, s.dataset, s.records)
    runs = f"{s.base},{eid}"
    assert card(get(http, "/compare", runs=runs, baseline=s.base), "exact")[eid]["pass_rate"] == 1.0
    r = http.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {
        "type": "experiments", "attributes": {"scope": "experiments", "metrics": [
            {"span_id": "7000", "trace_id": "t", "timestamp_ms": 2, "metric_type": "boolean", "label": "exact",
             "boolean_value": False},
            {"span_id": "7001", "trace_id": "t", "timestamp_ms": 2, "metric_type": "categorical", "label": "fresh",
             "categorical_value": "x"},
            {"span_id": "7000", "trace_id": "t", "timestamp_ms": 2, "metric_type": "score", "label": "broken",
             "score_value": 0.3, "status": "ERROR"}]}}})
    assert r.status_code == 202, r.text
    doc = get(http, "/compare", runs=runs, baseline=s.base)
    assert card(doc, "exact")[eid]["n"] == 2 and card(doc, "exact")[eid]["pass_rate"] == 1.0
    assert card(doc, "fresh")[eid]["n"] == 1
    flagged = get(http, "/compare/rows", runs=runs, baseline=s.base, errors="true", vs=eid)["data"]
    cell = next(c for r in flagged if r["record_id"] == s.records["q00"] for c in r["runs"] if c["run_id"] == eid)
    assert cell["metric_errors"] == ["broken"]

    engine = make_engine(server.database_url)
    try:
        with engine.begin() as conn:
            exp_pk = conn.scalar(select(Experiment.pk).where(Experiment.id == eid))
            high = conn.scalar(select(func.max(SpanMetric.pk))) + 10**9

            def metric(pk: int, span_id: str, label: str, value: float) -> None:
                conn.execute(insert(SpanMetric).values(
                    pk=pk, experiment_pk=exp_pk, span_id=span_id, trace_id="t", label=label, metric_source="custom",
                    timestamp_ms=3, metric_type="score", number_value=value, text_value=None,
                    body={"span_id": span_id, "trace_id": "t", "label": label, "metric_type": "score",
                          "score_value": value, "metric_source": "custom", "timestamp_ms": 3}))

            metric(high, "7001", "gap", 0.5)
        assert card(get(http, "/compare", runs=runs, baseline=s.base), "gap")[eid]["n"] == 1
        with engine.begin() as conn:
            metric(high - 1, "7000", "gap", 0.25)  # committed after a newer metric was read
            metric(high + 1, "7000", "after", 1.0)
    finally:
        engine.dispose()
    gap = card(get(http, "/compare", runs=runs, baseline=s.base), "gap")[eid]
    assert gap["n"] == 2 and gap["mean"] == pytest.approx(0.375)


def _same_run(got: Any, want: Any) -> None:
    """The refreshed run holds what a full read of the run computes (list positions aside: only the index uses them)."""
    def per_record(run: Any) -> dict[str, tuple[Any, ...]]:
        return {rid: (run.span_ids[at], run.trace_ids[at], run.durations[at], run.starts[at])
                for rid, at in run.index.items()}

    assert per_record(got) == per_record(want)
    assert got.errored == want.errored and got.record_of == want.record_of
    assert got.columns == want.columns and got.type_counts == want.type_counts
    assert {r: sorted(v) for r, v in got.metric_errors.items()} == {r: sorted(v) for r, v in want.metric_errors.items()}
    assert got.metric_rows == want.metric_rows


def test_spans_and_metrics_added_to_a_loaded_run_are_merged_as_a_full_read_computes_them(
        server: Server, http: httpx.Client, scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that gained spans (new records, child spans, another iteration of a record) and metrics (for new
    and old spans, one that arrived before its span, an error) is brought up to date without reading it
    again, to the same columns as a full read; a span that would replace a record's compared span makes
    it read afresh; a status change reads nothing."""
    from sqlalchemy.orm import Session

    from kennel.experiments import compare_load
    from kennel.experiments.compare_load import load_run
    from kennel.experiments.compare_run import RunInfo

    s = scenario
    eid = manual_run(http, s.project, s.dataset, s.records)
    base_ns = 1_700_000_000_000_000_000
    trace = unique("trace")

    def span(span_id: str, q: str, at: int, *, parent: str = "undefined", status: str = "ok") -> dict[str, Any]:
        return {"trace_id": trace, "span_id": span_id, "parent_id": parent, "name": "task", "start_ns": base_ns + at,
                "duration": 10 + at, "status": status, "meta": {"span": {"kind": "experiment"}, "input": {"q": q}},
                "metrics": {}, "tags": [f"experiment_id:{eid}", f"dataset_record_id:{s.records[q]}"]}

    def metric(span_id: str, label: str, kind: str, value: Any, **extra: Any) -> dict[str, Any]:
        return {"span_id": span_id, "trace_id": trace, "timestamp_ms": 1, "metric_type": kind, "label": label,
                f"{kind}_value": value, **extra}

    def push(spans: list[Any], metrics: list[Any]) -> None:
        r = http.post(f"/api/unstable/llm-obs/v1/experiments/{eid}/events", json={"data": {"type": "experiments",
                      "attributes": {"scope": "experiments", "spans": spans, "metrics": metrics}}})
        assert r.status_code == 202, r.text

    # q03's metric arrives before its span: it is read before the run is, and skipped then.
    push([], [metric("7303", "tone", "categorical", "early")])
    engine = make_engine(server.database_url)

    def info() -> RunInfo:
        with Session(engine) as session:
            e = session.scalars(select(Experiment).where(Experiment.id == eid)).one()
            return RunInfo(e.pk, e.id, e.name, e.experiment, e.status, e.error, e.project_pk, s.project, s.dataset,
                           None, e.dataset_version, {}, None, e.created_at, e.updated_at)

    def compare_with_full_read(*, refreshed: bool) -> None:
        full_reads: list[str] = []
        real = compare_load._load

        def counted(session: Any, run: RunInfo) -> Any:
            full_reads.append(run.id)
            return real(session, run)

        monkeypatch.setattr(compare_load, "_load", counted)
        with Session(engine) as session:
            got = load_run(session, info())
        monkeypatch.setattr(compare_load, "_load", real)
        assert full_reads == ([] if refreshed else [eid])
        with Session(engine) as session:
            _same_run(got, real(session, info()))

    try:
        with Session(engine) as session:
            held = load_run(session, info())
        assert set(held.index) == {s.records["q00"], s.records["q04"]}
        push([span("7301", "q01", 50, status="error"), span("7303", "q03", 40),
              span("7310", "q01", 5, parent="7301"), span("7320", "q00", 60)],
             [metric("7301", "exact", "boolean", False), metric("7301", "tone", "categorical", "curt"),
              metric("7303", "tone", "categorical", "late"), metric("7303", "closeness", "score", 0.5, status="ERROR"),
              metric("7000", "exact", "boolean", False), metric("7000", "fresh", "score", 0.25),
              metric("7320", "fresh", "score", 9.0), metric("7310", "child", "score", 1.0)])
        compare_with_full_read(refreshed=True)
        # Two spans of q05 in one batch, the second one stored started first: it is q05's.
        push([span("7302", "q02", 70), span("7340", "q05", 90), span("7341", "q05", 80)],
             [metric("7302", "exact", "boolean", True), metric("7301", "fresh", "score", 1.0),
              metric("7303", "tone", "categorical", "later"), metric("7340", "exact", "boolean", True),
              metric("7341", "exact", "boolean", False)])
        compare_with_full_read(refreshed=True)
        # A span committed after a newer one was read (a lower pk) is not lost: the run is read afresh.
        with engine.begin() as conn:
            row = conn.execute(select(Span).where(Span.experiment_id == eid, Span.span_id == "7302")).mappings().one()
            high = conn.scalar(select(func.max(Span.pk))) + 10**6

            def copy(pk: int, span_id: str, q: str) -> None:
                conn.execute(insert(Span).values({**row, "pk": pk, "span_id": span_id,
                                                  "tag_text": f"\nexperiment_id:{eid}\ndataset_record_id:{s.records[q]}\n"}))

            copy(high, "7350", "q07")
        compare_with_full_read(refreshed=True)
        with engine.begin() as conn:
            copy(high - 1, "7351", "q08")
            copy(high + 1, "7352", "q09")
        compare_with_full_read(refreshed=False)
        r = http.patch(f"/api/unstable/llm-obs/v1/experiments/{eid}", json={"data": {"type": "experiments",
                       "attributes": {"status": "completed"}}})
        assert r.status_code == 200, r.text
        compare_with_full_read(refreshed=True)
        # Another iteration of q02 that started first: it is now q02's compared span.
        push([span("7330", "q02", 1)], [metric("7330", "exact", "boolean", False)])
        compare_with_full_read(refreshed=False)
    finally:
        engine.dispose()


def test_direction_is_remembered_and_flips_the_counts(http: httpx.Client, scenario: Scenario) -> None:
    s = scenario
    before = card(get(http, "/compare", runs=f"{s.base},{s.new}"), "closeness")[s.new]["counts"]
    r = http.put(f"{API}/metric-directions", json={"data": {"type": "metric_directions", "attributes": {
        "project_id": s.project, "label": "closeness", "higher_is_better": False}}})
    assert r.status_code == 200, r.text
    try:
        doc = get(http, "/compare", runs=f"{s.base},{s.new}")
        after = card(doc, "closeness")[s.new]["counts"]
        assert (after["improved"], after["regressed"]) == (before["regressed"], before["improved"])
        assert next(c for c in doc["data"]["cards"] if c["metric"] == "closeness")["higher_is_better"] is False
    finally:
        http.put(f"{API}/metric-directions", json={"data": {"type": "metric_directions", "attributes": {
            "project_id": s.project, "label": "closeness", "higher_is_better": True}}})


def test_list_chart_and_exports(http: httpx.Client, scenario: Scenario) -> None:
    s = scenario
    listed = get(http, "", project_id=s.project)["data"]
    by_id = {r["id"]: r["attributes"] for r in listed}
    assert by_id[s.base]["summary_metrics"]["accuracy"] == pytest.approx(
        sum(figures("base")[q]["exact"] for q in QUESTIONS) / 12)
    assert by_id[s.old]["dataset_version"] == 1 and by_id[s.base]["dataset_version"] == 2
    name = by_id[s.base]["experiment"]
    chart = get(http, "/chart", project_id=s.project, experiment=name, metric="exact")["data"]
    points = {p["run_id"]: p["value"] for p in chart["points"]}
    for run in ("old", "base", "new"):
        assert points[getattr(s, run)] == pytest.approx(sum(figures(run)[q]["exact"] for q in QUESTIONS) / 12)
    md = http.get(f"{API}/compare/export", params={"runs": f"{s.base},{s.new}", "format": "markdown"})
    assert md.status_code == 200 and "| exact |" in md.text and "McNemar" not in md.text and "p =" in md.text
    got = http.get(f"{API}/compare/export", params={"runs": f"{s.base},{s.new}", "format": "csv"})
    assert got.status_code == 200
    table = list(csv.reader(io.StringIO(got.text)))
    assert len(table) == 13 and table[0][:3] == ["record_id", "input", "expected_output"]
    assert {r[0] for r in table[1:]} == set(s.records.values())


def test_actions_write_one_queue_one_pairwise_queue_one_version(http: httpx.Client, scenario: Scenario) -> None:
    s = scenario
    figs = {"base": figures("base"), "new": figures("new")}
    regressed = [q for q in QUESTIONS if figs["base"][q]["exact"] and not figs["new"][q]["exact"]]
    body = {"runs": [s.base, s.new], "baseline": s.base, "filter": {"metric": "exact", "outcome": "regressed"},
            "queue_name": unique("regressions")}
    r = http.post(f"{API}/compare/annotation-queue", json={"data": {"type": "annotation_queue_actions",
                                                                     "attributes": body}})
    assert r.status_code == 200, r.text
    queue = r.json()["data"]["attributes"]
    assert queue["created"] and queue["added"] == len(regressed)
    items = http.get(f"{V2}/annotation-queues/{queue['queue_id']}/annotated-interactions").json()
    got = items["data"]["attributes"]["annotated_interactions"]
    assert {i["type"] for i in got} == {"experiment_trace"} and len(got) == len(regressed)
    rows = get(http, "/compare/rows", runs=f"{s.base},{s.new}", metric="exact", outcome="regressed")["data"]
    traces = {next(c for c in r["runs"] if c["run_id"] == s.new)["trace_id"] for r in rows}
    assert {i["content_id"] for i in got} == traces

    pick = [s.rid("q00"), s.rid("q04")]
    r = http.post(f"{API}/compare/pairwise-queue", json={"data": {"type": "pairwise_queue_actions", "attributes": {
        "runs": [s.base, s.new], "record_ids": pick, "a": s.base, "b": s.new, "queue_name": unique("pairs")}}})
    assert r.status_code == 200, r.text
    pq = r.json()["data"]["attributes"]["queue_id"]
    schema = http.get(f"{V2}/annotation-queues/{pq}/label-schema").json()["data"]["attributes"]
    assert schema["annotation_schema"]["label_schemas"][0]["values"] == ["a", "b", "tie"]
    got = http.get(f"{V2}/annotation-queues/{pq}/annotated-interactions").json()["data"]["attributes"]
    blocks = [i["display_block"] for i in got["annotated_interactions"]]
    assert len(blocks) == 2
    texts = [[b.get("content") for b in bl if b.get("label") in ("A", "B")] for bl in blocks]
    assert sorted(texts) == sorted([[BASE_ANSWERS["q00"], NEW_ANSWERS["q00"]], [BASE_ANSWERS["q04"], NEW_ANSWERS["q04"]]])

    before = http.get(f"{V2}/{s.project}/datasets/{s.dataset}/records").json()
    version_before = max(v["attributes"]["version_number"] for v in http.get(
        f"{V2}/{s.project}/datasets/{s.dataset}/versions").json()["data"])
    r = http.post(f"{API}/compare/dataset-version", json={"data": {"type": "dataset_version_actions", "attributes": {
        "runs": [s.base, s.new], "record_ids": [s.rid("q00"), s.rid(RAISES)], "run": s.new,
        "dataset_id": s.dataset}}})
    assert r.status_code == 200, r.text
    result = r.json()["data"]["attributes"]
    assert result["version"] == version_before + 1 and result["added"] == 1
    assert result["skipped_record_ids"] == [s.rid(RAISES)], "the run raised on it: no output to keep"
    records = http.get(f"{V2}/{s.project}/datasets/{s.dataset}/records").json()["data"]
    assert len(records) == len(before["data"])
    changed = next(rec for rec in records if rec["id"] == s.rid("q00"))
    assert changed["attributes"]["expected_output"] == NEW_ANSWERS["q00"]


def test_bad_input_is_a_clear_4xx_and_changes_nothing(server: Server, http: httpx.Client, scenario: Scenario,
                                                       annotator: Annotator) -> None:
    s = scenario
    cases = [({"runs": f"{s.base},nope"}, 404, "nope"), ({"runs": s.base}, 400, "at least two"),
             ({"runs": f"{s.base},{s.new}", "baseline": s.old}, 400, "baseline"),
             ({"runs": f"{s.base},{s.new}", "metrics": "nope"}, 400, "unknown metric"),
             ({"runs": f"{s.base},{s.new}", "sort": "nope"}, 400, "unknown metric"),
             ({"runs": f"{s.base},{s.new}", "outcome": "better"}, 400, "outcome"),
             ({"runs": f"{s.base},{s.new}", "metric": "closeness", "value": "big"}, 400, "score"),
             ({"runs": f"{s.base},{s.new}", "cursor": "garbage"}, 400, "cursor")]
    for params, status, words in cases:
        r = http.get(f"{API}/compare", params=params)
        assert r.status_code == status and words in r.text, (params, r.text)
    other = http.post(f"{V2.replace('v2', 'unstable')}/experiments", json={"data": {"type": "experiments", "attributes": {
        "name": "elsewhere", "project_id": http.post(f"{V2}/projects", json={"data": {"type": "projects", "attributes": {
            "name": unique("other")}}}).json()["data"]["id"]}}}).json()["data"]["id"]
    r = http.get(f"{API}/compare", params={"runs": f"{s.base},{other}"})
    assert r.status_code == 400 and "different projects" in r.text
    with server.client(headers=annotator.headers) as c:
        r = c.post(f"{API}/compare/annotation-queue", json={"data": {"type": "annotation_queue_actions", "attributes": {
            "runs": [s.base, s.new], "queue_name": "nope"}}})
        assert r.status_code == 403, r.text
        assert c.get(f"{API}/compare", params={"runs": f"{s.base},{s.new}"}).status_code == 403
    queues = http.get(f"{V2}/annotation-queues", params={"projectId": s.project}).text
    assert '"nope"' not in queues
    r = http.post(f"{API}/compare/annotation-queue", json={"data": {"type": "annotation_queue_actions", "attributes": {
        "runs": [s.base, s.new], "queue_name": "bad\u0000name"}}})
    assert r.status_code == 400 and "NUL" in r.text
    # An action on an empty selection changes nothing.
    r = http.post(f"{API}/compare/pairwise-queue", json={"data": {"type": "pairwise_queue_actions", "attributes": {
        "runs": [s.base, s.new], "filter": {"metric": "exact", "outcome": "missing"}, "a": s.base, "b": s.new,
        "queue_name": "empty-one"}}})
    assert r.status_code == 400 and "empty" in r.text
    assert "empty-one" not in http.get(f"{V2}/annotation-queues").text


def test_openapi_documents_the_workspace(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/api/kennel/v1/experiments", "/api/kennel/v1/experiments/compare",
                 "/api/kennel/v1/experiments/compare/rows", "/api/kennel/v1/experiments/compare/tests",
                 "/api/kennel/v1/experiments/compare/export", "/api/kennel/v1/experiments/compare/annotation-queue",
                 "/api/kennel/v1/experiments/compare/pairwise-queue",
                 "/api/kennel/v1/experiments/compare/dataset-version", "/api/kennel/v1/experiments/metric-directions"):
        assert path in paths, path
    assert "requestBody" in paths["/api/kennel/v1/experiments/compare/pairwise-queue"]["post"]


# In Chromium ----------------------------------------------------------------------------------------

def interactions(http: httpx.Client, project: str, queue_name: str) -> list[dict[str, Any]]:
    """The interactions of the project's queue of this name, read back over the API."""
    queue = next(q for q in http.get(f"{V2}/annotation-queues", params={"projectId": project}).json()["data"]
                 if q["attributes"]["name"] == queue_name)
    got = http.get(f"{V2}/annotation-queues/{queue['id']}/annotated-interactions").json()
    return got["data"]["attributes"]["annotated_interactions"]


def test_workspace_in_chromium(server: Server, http: httpx.Client, scenario: Scenario, annotator: Annotator,
                               browser: Any) -> None:
    s = scenario
    figs = {"base": figures("base"), "new": figures("new")}
    regressed = {s.rid(q) for q in QUESTIONS if figs["base"][q]["exact"] and not figs["new"][q]["exact"]}
    names = {r["id"]: r["attributes"]["name"] for r in get(http, "", project_id=s.project)["data"]}
    web = person(server)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    problems: list[str] = []
    try:
        context.add_cookies([{"name": "kennel_session", "value": web.cookies.get("kennel_session"),
                              "url": server.base_url}])
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
        page.on("request", lambda r: None if r.url.startswith(server.base_url + "/")
                else problems.append(f"request to {r.url}"))
        page.goto(f"{server.base_url}/projects/{s.project}/experiments")
        expect(page.get_by_role("img", name=re.compile("across|over"))).to_be_visible()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{server.backend}-experiments.png"), full_page=True)
        page.get_by_role("checkbox", name=f"select {names[s.base]}").check()
        page.get_by_role("checkbox", name=f"select {names[s.new]}").check()
        page.get_by_role("button", name="Compare selected runs").click()
        expect(page.get_by_role("heading", name=re.compile(f"baseline {re.escape(names[s.base])}"))).to_be_visible()

        # The cards' figures, as a person reads them, against the answer tables.
        exact = page.locator(".metric-card", has=page.get_by_role("heading", name=re.compile("^exact")))
        rate = sum(figs["new"][q]["exact"] for q in QUESTIONS) / 12
        assert exact.locator(f".fig[data-run='{s.new}'] .big").inner_text() == f"{rate * 100:.1f}%"
        close = page.locator(".metric-card", has=page.get_by_role("heading", name=re.compile("^closeness")))
        mean = sum(figs["new"][q]["closeness"] for q in QUESTIONS) / 12
        assert float(close.locator(f".fig[data-run='{s.new}'] .big").get_attribute("data-value")) == pytest.approx(mean)
        assert "Is it real? Δ" in exact.locator(f".fig[data-run='{s.new}'] .real").inner_text()
        page.screenshot(path=str(SHOTS / f"{server.backend}-compare.png"), full_page=True)

        # A card's number filters the rows, and the URL keeps the filter through a reload.
        exact.locator(f".fig[data-run='{s.new}'] a[data-outcome='regressed']").click()
        expect(page.locator("tr[data-record]")).to_have_count(len(regressed))
        assert "outcome=regressed" in page.url
        page.reload()
        assert {page.locator("tr[data-record]").nth(i).get_attribute("data-record")
                for i in range(len(regressed))} == regressed
        # Keys: j moves to a record, x ticks it for an action (and unticks it).
        page.keyboard.press("j")
        first = page.locator("tr[data-record]").first
        expect(first).to_be_focused()
        page.keyboard.press("x")
        expect(first.get_by_role("checkbox")).to_be_checked()
        page.keyboard.press("x")
        expect(first.get_by_role("checkbox")).not_to_be_checked()
        # Modes: full shows whole outputs, diff marks the changed lines against the baseline.
        page.get_by_role("link", name="full").click()
        expect(page.locator("td.cell pre").first).to_be_visible()
        page.get_by_role("link", name="diff").click()
        row = page.locator(f"tr[data-record='{s.rid('q05')}']")
        expect(row.locator(".diff .add")).to_have_text("+ nope")
        expect(row.locator(".diff .del")).to_have_text(f"- {EXPECTED['q05']}")
        hostile = page.locator(f"tr[data-record='{s.rid('q04')}']")
        expect(hostile.get_by_text(NEW_ANSWERS["q04"], exact=False).first).to_be_visible()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        page.screenshot(path=str(SHOTS / f"{server.backend}-compare-diff.png"), full_page=True)

        # A record opens with every run's trace side by side.
        hostile.get_by_role("link").first.click()
        expect(page.get_by_role("heading", name="Each run’s trace, side by side")).to_be_visible()
        for run_id in (s.base, s.new):
            section = page.locator(f"section[data-run='{run_id}']")
            expect(section.locator("details.span").first).to_be_visible()
        trace = page.locator(f"section[data-run='{s.new}'] details.span").first
        expect(trace.get_by_text(NEW_ANSWERS["q04"], exact=True).first).to_be_visible()
        assert page.evaluate("typeof window.__pwned") == "undefined"
        page.screenshot(path=str(SHOTS / f"{server.backend}-record.png"), full_page=True)
        page.go_back()

        # Actions: the regressions (no box ticked: the filter) to a new queue; two ticked records to a
        # pairwise queue; one ticked record's new output into the dataset as a new version.
        queue_name = unique("ui-regressions")
        page.get_by_label("or a new queue named").fill(queue_name)
        page.get_by_role("button", name="Send to queue").click()
        expect(page.get_by_role("heading", name="Sent to the annotation queue")).to_be_visible()
        assert len(interactions(http, s.project, queue_name)) == len(regressed)
        page.go_back()
        pair_name = unique("ui-pairs")
        page.get_by_role("checkbox", name=f"select record {s.rid('q04')}").check()
        page.get_by_role("checkbox", name=f"select record {s.rid('q05')}").check()
        page.get_by_label("Pairwise queue name").fill(pair_name)
        page.get_by_role("button", name="Build pairwise queue").click()
        expect(page.get_by_role("heading", name="Pairwise queue created")).to_be_visible()
        assert len(interactions(http, s.project, pair_name)) == 2
        page.go_back()
        versions = http.get(f"{V2}/{s.project}/datasets/{s.dataset}/versions").json()["data"]
        page.get_by_role("checkbox", name=f"select record {s.rid('q05')}").check()
        page.get_by_label("Expected output from run").select_option(s.new)
        page.get_by_role("button", name="Add to dataset").click()
        expect(page.get_by_role("heading", name="New dataset version")).to_be_visible()
        after = http.get(f"{V2}/{s.project}/datasets/{s.dataset}/versions").json()["data"]
        assert len(after) == len(versions) + 1
        records = http.get(f"{V2}/{s.project}/datasets/{s.dataset}/records").json()["data"]
        assert next(r for r in records if r["id"] == s.rid("q05"))["attributes"]["expected_output"] == "nope"
        assert not problems, problems
    finally:
        context.close()
    # An annotator sees none of it, and cannot act.
    assert annotator.web.get(f"/experiments/compare?runs={s.base},{s.new}").status_code == 403
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', annotator.web.get("/queues").text).group(1)
    r = annotator.web.post("/experiments/compare/annotation-queue", data={
        "csrf_token": token, "runs": f"{s.base},{s.new}", "queue_name": "sneaky"})
    assert r.status_code == 403
    assert "sneaky" not in http.get(f"{V2}/annotation-queues").text
