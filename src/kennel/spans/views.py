"""Span rows to wire dicts (the typed client's LLMObsSpanAttributes, which ddtrace's get_spans returns)."""

from __future__ import annotations

from typing import Any

import orjson


def _text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def span_io(value: Any) -> dict[str, Any] | None:
    """LLMObsSpanIO is `{messages, value}` with string contents; anything else travels as JSON text."""
    if value is None:
        return None
    if isinstance(value, dict) and set(value) <= {"messages", "value", "documents", "prompt", "parameters"}:
        out: dict[str, Any] = {}
        if "value" in value and value["value"] is not None:
            out["value"] = _text(value["value"])
        messages = value.get("messages")
        if isinstance(messages, list):
            out["messages"] = [
                {**m, "content": _text(m.get("content", ""))} if isinstance(m, dict) else {"content": _text(m)}
                for m in messages
            ]
        if out:
            return out
    return {"value": _text(value)}


def evaluation_map(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics keyed by label, the latest (by timestamp_ms) winning."""
    latest: dict[str, dict[str, Any]] = {}
    for m in metrics:
        seen = latest.get(m["label"])
        if seen is None or m.get("timestamp_ms", 0) >= seen.get("timestamp_ms", 0):
            latest[m["label"]] = m
    out: dict[str, Any] = {}
    for label, m in latest.items():
        item: dict[str, Any] = {"eval_metric_type": m["metric_type"],
                                "value": m.get(f"{m['metric_type']}_value"), "tags": m.get("tags") or []}
        for key in ("assessment", "reasoning", "status"):
            if isinstance(m.get(key), str):
                item[key] = m[key]
        out[label] = item
    return out


def span_attributes(row: Any, meta: dict[str, Any], body: dict[str, Any],
                    evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = meta or {}
    attrs: dict[str, Any] = {
        "span_id": row.span_id,
        "trace_id": row.trace_id,
        "name": row.name,
        "span_kind": row.span_kind or "",
        "ml_app": row.ml_app or "",
        "status": row.status,
        "start_ns": row.start_ns,
        "duration": row.duration,
        "tags": body.get("tags") or [],
        "metrics": body.get("metrics") or {},
        "metadata": meta.get("metadata") if isinstance(meta.get("metadata"), dict) else {},
    }
    if row.parent_id is not None:
        attrs["parent_id"] = row.parent_id
    for key in ("input", "output"):
        io = span_io(meta.get(key))
        if io is not None:
            attrs[key] = io
    for key in ("model_name", "model_provider", "intent"):
        if isinstance(meta.get(key), str):
            attrs[key] = meta[key]
    if row.session_id is not None:
        attrs["session_id"] = row.session_id
    if evaluation:
        attrs["evaluation"] = evaluation
    return attrs


def span_resource(row: Any, meta: dict[str, Any], body: dict[str, Any],
                  evaluation: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": row.span_id, "type": "span", "attributes": span_attributes(row, meta, body, evaluation)}
