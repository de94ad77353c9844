"""The ddtrace SDK's dataset workflow against a live server (each scenario in its own interpreter)."""

from __future__ import annotations

from tests.conftest import run_ddtrace, unique


def test_create_push_and_pull_by_version_and_tags(server):
    name, project = unique("dd-ds"), unique("dd-proj")
    result = run_ddtrace(server, f"""
ds = LLMObs.create_dataset(dataset_name={name!r}, project_name={project!r}, description="ddtrace flow",
    records=[
        {{"input_data": {{"q": "capital of France?"}}, "expected_output": {{"a": "Paris"}},
          "metadata": {{"lang": "en"}}, "tags": ["env:prod", "lang:en"]}},
        {{"input_data": {{"q": "capital of Spain?"}}, "expected_output": {{"a": "Madrid"}}, "tags": ["env:dev"]}},
        {{"input_data": "plain string input", "expected_output": None}},
    ])
out = {{"v_create": ds.version, "ids": [r["record_id"] for r in ds]}}

ds.append({{"input_data": {{"q": "capital of Italy?"}}, "expected_output": {{"a": "Rome"}}, "tags": ["env:prod"]}})
ds.update(0, {{"expected_output": {{"a": "Paris, France"}}}})
ds.delete(1)
ds.push()
out["v_push"] = ds.version
ds.add_tags(0, ["reviewed:yes"])
ds.push()
out["v_tags"] = ds.version

def view(d):
    return sorted([[r["input_data"], r["expected_output"], sorted(r.get("tags") or []), r.get("metadata")]
                   for r in d], key=repr)

latest = LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r})
out["latest_version"] = latest.version
out["latest"] = view(latest)
out["canonical_ids"] = all(r.get("canonical_id") for r in latest)
out["v1"] = view(LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r}, version=1))
out["v2"] = view(LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r}, version=2))
out["prod"] = view(LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r}, tags=["env:prod"]))
out["prod_or_dev"] = len(LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r},
                                             tags=["env:dev", "nonexistent:tag"]))
try:
    LLMObs.pull_dataset(dataset_name={name!r}, project_name={project!r}, version=99)
    out["bad_version"] = "no error"
except Exception as exc:
    out["bad_version"] = str(exc)
try:
    LLMObs.pull_dataset(dataset_name="no-such-dataset", project_name={project!r})
    out["missing"] = "no error"
except Exception as exc:
    out["missing"] = type(exc).__name__
again = LLMObs.create_dataset(dataset_name={name!r}, project_name={project!r})
out["again_version"] = again.version
print(json.dumps(out))
""")
    assert result["v_create"] == 1
    assert result["v_push"] == 2 and result["v_tags"] == 3
    assert result["latest_version"] == 3
    france = [{"q": "capital of France?"}, {"a": "Paris, France"}, ["env:prod", "lang:en", "reviewed:yes"],
              {"lang": "en"}]
    italy = [{"q": "capital of Italy?"}, {"a": "Rome"}, ["env:prod"], {}]
    plain = ["plain string input", "", [], {}]
    assert result["latest"] == sorted([france, italy, plain], key=repr)
    assert result["canonical_ids"]
    spain = [{"q": "capital of Spain?"}, {"a": "Madrid"}, ["env:dev"], {}]
    assert result["v1"] == sorted([[{"q": "capital of France?"}, {"a": "Paris"}, ["env:prod", "lang:en"],
                                    {"lang": "en"}], spain, plain], key=repr)
    assert sorted(map(repr, result["v2"])) == sorted(map(repr, [
        [{"q": "capital of France?"}, {"a": "Paris, France"}, ["env:prod", "lang:en"], {"lang": "en"}],
        italy, plain]))
    assert result["prod"] == sorted([france, italy], key=repr)
    assert result["prod_or_dev"] == 0, "env:dev only matched the deleted Spain record"
    assert "invalid version" in result["bad_version"]
    assert result["missing"] == "ValueError"
    assert result["again_version"] == 3, "create_dataset on a live name returns the existing dataset"


def test_large_create_spans_batches_in_one_version(server):
    name = unique("dd-big")
    result = run_ddtrace(server, f"""
records = [{{"input_data": {{"i": i, "text": "x" * 200}}, "expected_output": {{"i": i}}, "tags": [f"mod:{{i % 3}}"]}}
           for i in range(2500)]
ds = LLMObs.create_dataset(dataset_name={name!r}, records=records)
pulled = LLMObs.pull_dataset(dataset_name={name!r})
print(json.dumps({{"version": ds.version, "pulled_version": pulled.version, "n": len(pulled),
                  "ids": len({{r["record_id"] for r in pulled}}),
                  "first": pulled[0]["input_data"]["i"], "last": pulled[len(pulled) - 1]["input_data"]["i"],
                  "mod0": len(LLMObs.pull_dataset(dataset_name={name!r}, tags=["mod:0"]))}}))
""")
    assert result["version"] == 1 and result["pulled_version"] == 1, "batches after the first amend version 1"
    assert result["n"] == 2500 and result["ids"] == 2500
    assert (result["first"], result["last"]) == (2499, 0), "newest first across pages"
    assert result["mod0"] == 834
