"""The real ddtrace SDK driving experiments end to end against a live server."""

from __future__ import annotations

import pytest

from tests.conftest import run_ddtrace, unique

V1 = "/api/v2/llm-obs/v1/experiments"

SETUP = """
from ddtrace.llmobs._experiment import EvaluatorResult

ds = LLMObs.create_dataset(dataset_name={ds!r}, description="d", records=[
    {{"input_data": {{"q": "2+2"}}, "expected_output": "4", "metadata": {{"lvl": "easy"}}, "tags": ["topic:math"]}},
    {{"input_data": {{"q": "3+3"}}, "expected_output": "6", "metadata": {{"lvl": "easy"}}}},
    {{"input_data": {{"q": "capital of France"}}, "expected_output": "Paris", "metadata": {{"lvl": "hard"}}}},
])

ANSWERS = {{"2+2": "4", "3+3": "7", "capital of France": "Paris"}}

def task(input_data, config):
    return ANSWERS[input_data["q"]]

def exact(input_data, output_data, expected_output):
    return output_data == expected_output

def length(input_data, output_data, expected_output):
    return len(output_data)

def grade(input_data, output_data, expected_output):
    return EvaluatorResult(value="GOOD" if output_data == expected_output else "bad", reasoning="compared",
                           assessment="pass" if output_data == expected_output else "fail")

def accuracy(inputs, outputs, expected_outputs, evaluators_results):
    vals = evaluators_results["exact"]
    return sum(1 for v in vals if v) / len(vals)
"""


def test_experiment_run_pull_list_and_rerun(server, http):
    ds, name = unique("ds"), unique("exp")
    script = SETUP.format(ds=ds) + f"""
exp = LLMObs.experiment({name!r}, task, ds, [exact, length, grade], description="first run",
                        tags={{"git.commit.sha": "abc123"}}, config={{"model": "m1"}}, summary_evaluators=[accuracy])
result = exp.run()
LLMObs.flush()
eid = exp._id
rows = result["rows"]
pulled = LLMObs.pull_experiment(eid)
prow = pulled.result["rows"]
listed = LLMObs.list_experiments(experiment_name={name!r})
by_meta = LLMObs.list_experiments(metadata_filter={{"tags": ["git.commit.sha:abc123"]}})
child = pulled.rerun_evaluators([exact])
LLMObs.flush()
print(json.dumps({{
    "eid": eid, "run_name": exp._experiment._run_name, "dataset_id": ds._id, "dataset_version": ds.version,
    "local": [[r["record_id"], r["output"], r["evaluations"]["exact"]["value"]] for r in rows],
    "summary": result["summary_evaluations"]["accuracy"]["value"],
    "pulled": [[r["record_id"], r["output"], r["input"], r["expected_output"],
                {{k: v["value"] for k, v in r["evaluations"].items()}}] for r in prow],
    "pulled_summary": {{k: v["value"] for k, v in pulled.result["summary_evaluations"].items()}},
    "listed": [e["id"] for e in listed], "listed_status": [e["status"] for e in listed],
    "by_meta": [e["id"] for e in by_meta],
    "child": child._id,
}}))
"""
    out = run_ddtrace(server, script)
    eid = out["eid"]
    assert [r[2] for r in out["local"]] == [True, False, True]
    assert out["summary"] == pytest.approx(2 / 3)
    local_ids = [r[0] for r in out["local"]]
    assert [r[0] for r in out["pulled"]] == local_ids, "rows in span order, record ids from the tag"
    assert out["pulled"][0][1:4] == ["4", {"q": "2+2"}, "4"]
    assert out["pulled"][1][4] == {"exact": False, "length": 1, "grade": "bad"}
    assert out["pulled"][2][4]["grade"] == "good", "categorical values are lower-cased by ddtrace"
    assert out["pulled_summary"]["accuracy"] == pytest.approx(2 / 3)
    assert out["listed"] == [eid] and out["listed_status"] == ["completed"]
    assert eid in out["by_meta"]

    exp = http.get(V1, params={"filter[id]": eid}).json()["data"][0]["attributes"]
    assert exp["name"] == out["run_name"] and exp["experiment"] == name
    assert exp["status"] == "completed" and exp["config"] == {"model": "m1"}
    assert exp["dataset_id"] == out["dataset_id"] and exp["dataset_version"] == out["dataset_version"]

    child = http.get(V1, params={"filter[parent_experiment_id]": eid}).json()["data"]
    assert [c["id"] for c in child] == [out["child"]]
    assert child[0]["attributes"]["status"] == "completed"
    assert child[0]["attributes"]["name"].startswith(f"{name}-rerun-")
    events = http.get(f"/api/unstable/llm-obs/v1/experiments/{out['child']}/events",
                      params={"include[eval_metrics]": "true"}).json()["data"]["attributes"]
    assert len(events["spans"]) == 3
    assert sorted(m["label"] for s in events["spans"] for m in s["eval_metrics"]) == ["exact"] * 3


def test_failing_evaluator_runs_and_async(server, http):
    ds, name = unique("ds"), unique("exp-fail")
    script = SETUP.format(ds=ds) + f"""
import asyncio

def broken(input_data, output_data, expected_output):
    raise RuntimeError("evaluator exploded")

exp = LLMObs.experiment({name!r}, task, ds, [exact, broken], runs=2)
result = exp.run()
LLMObs.flush()

async def atask(input_data, config):
    return ANSWERS[input_data["q"]]

aexp = LLMObs.async_experiment({name + "-async"!r}, atask, ds, [exact])
aresult = asyncio.run(aexp.run(jobs=3))
LLMObs.flush()
pulled = LLMObs.pull_experiment(exp._id)
print(json.dumps({{"eid": exp._id, "runs": len(result["runs"]), "aid": aexp._id,
                  "arows": len(aresult["rows"]), "pulled_rows": len(pulled.result["rows"])}}))
"""
    out = run_ddtrace(server, script)
    assert out["runs"] == 2 and out["pulled_rows"] == 6
    exp = http.get(V1, params={"filter[id]": out["eid"]}).json()["data"][0]["attributes"]
    assert exp["status"] == "failed"
    assert "broken" in exp["error"] and "evaluator exploded" in exp["error"]
    assert exp["run_count"] == 2
    aexp = http.get(V1, params={"filter[id]": out["aid"]}).json()["data"][0]["attributes"]
    assert aexp["status"] == "completed" and out["arows"] == 3
