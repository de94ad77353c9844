"""Validation of intake payloads (spans and evaluation metrics) into insertable rows.

Plain Python checks rather than pydantic models: the intake is the hot path (hundreds of spans per
request), and a span is kept verbatim apart from the few columns derived here.

Policy for a batch with bad items: accepted in part. Every item is checked on its own; the valid ones
are stored and each rejected one is reported with a JSON pointer. A request where nothing is valid is
a 400 (so a client that only looks at the status sees the failure), and a valid span is never dropped
because a neighbour was malformed.
"""

from __future__ import annotations

import math
import uuid
from typing import Any, TypeGuard

import orjson

from kennel.errors import error_item
from kennel.jsonapi import MAX_JSON_DEPTH, storable, unstorable

METRIC_TYPES = ("score", "categorical", "boolean", "json")
ASSESSMENTS = ("pass", "fail")
SPAN_STATUSES = ("ok", "error")
MAX_BIGINT = 2**63
NUL = b"\\u0000"


class ItemError(Exception):
    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(detail)
        self.pointer = pointer
        self.detail = detail

    def item(self) -> dict[str, Any]:
        return error_item(400, "Bad Request", self.detail, pointer=self.pointer)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_storable(item: dict[str, Any], pointer: str) -> None:
    problem = unstorable(item)
    if problem is not None:
        raise ItemError(pointer + problem[0], problem[1])


def _id_str(span: dict[str, Any], key: str, pointer: str) -> str:
    value = span.get(key)
    if _is_int(value) and value >= 0:
        return str(value)
    if not isinstance(value, str) or not value or len(value) > 64:
        raise ItemError(f"{pointer}/{key}", f"{key} is required: a non-empty string of at most 64 characters")
    return value


def tag_value(tags: list[str], key: str) -> str | None:
    prefix = key + ":"
    for tag in tags:
        if tag.startswith(prefix):
            return tag[len(prefix):]
    return None


def span_kind_of(meta: dict[str, Any]) -> str | None:
    span = meta.get("span")
    if isinstance(span, dict) and isinstance(span.get("kind"), str):
        return span["kind"]
    flat = meta.get("span.kind")
    return flat if isinstance(flat, str) else None


def span_row(span: Any, pointer: str, *, scope: str | None = None, experiment_id: str | None = None,
             check: bool = True) -> dict[str, Any]:
    """One span as a row for `llmobs_spans`; raises ItemError naming the first bad field.

    `check=False`: the caller found the whole batch storable already (see storable_below)."""
    if not isinstance(span, dict):
        raise ItemError(pointer, "a span must be a JSON object")
    trace_id = _id_str(span, "trace_id", pointer)
    span_id = _id_str(span, "span_id", pointer)
    name = span.get("name")
    if not isinstance(name, str) or not name or len(name) > 512:
        raise ItemError(f"{pointer}/name", "name is required: a non-empty string of at most 512 characters")
    start_ns = span.get("start_ns")
    if not _is_int(start_ns) or not 0 <= start_ns < MAX_BIGINT:
        raise ItemError(f"{pointer}/start_ns", "start_ns is required: a non-negative integer (nanoseconds)")
    duration = span.get("duration")
    if not _is_number(duration) or duration < 0:
        raise ItemError(f"{pointer}/duration", "duration is required: a non-negative number (nanoseconds)")
    status = span.get("status", "ok")
    if status not in SPAN_STATUSES:
        raise ItemError(f"{pointer}/status", f"status must be one of {', '.join(SPAN_STATUSES)}, got {status!r}")
    meta = span.get("meta")
    if meta is None:
        meta = {}
    elif not isinstance(meta, dict):
        raise ItemError(f"{pointer}/meta", "meta must be a JSON object")
    tags = span.get("tags")
    if tags is None:
        tags = []
    elif type(tags) is not list or any(type(t) is not str for t in tags):
        raise ItemError(f"{pointer}/tags", "tags must be a list of strings")
    metrics = span.get("metrics")
    if metrics is not None and not isinstance(metrics, dict):
        raise ItemError(f"{pointer}/metrics", "metrics must be a JSON object")
    parent_id = span.get("parent_id")
    if parent_id is not None and not isinstance(parent_id, (str, int)):
        raise ItemError(f"{pointer}/parent_id", "parent_id must be a string")
    session_id = span.get("session_id")
    if session_id is not None and not isinstance(session_id, str):
        raise ItemError(f"{pointer}/session_id", "session_id must be a string")
    if check:
        _check_storable(span, pointer)
    ml_app = span.get("ml_app") if isinstance(span.get("ml_app"), str) else tag_value(tags, "ml_app")
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_id": None if parent_id in (None, "", "undefined") else str(parent_id),
        "name": name,
        "span_kind": span_kind_of(meta),
        "ml_app": ml_app,
        "session_id": session_id or tag_value(tags, "session_id"),
        "status": status,
        "start_ns": start_ns,
        "duration": float(duration),
        "scope": scope,
        "experiment_id": experiment_id or tag_value(tags, "experiment_id"),
        "tag_text": "\n" + "\n".join(tags) + "\n",
        "meta": meta,
        "body": {k: v for k, v in span.items() if k != "meta"},
    }


def storable_below(batch: Any, level: int) -> bool:
    """Whether every item `level` arrays and objects down in `batch` is storable (jsonapi.storable).

    One check of the whole batch at C speed; only a batch that fails it has each item checked, to say
    which ones cannot be stored."""
    return storable(batch, max_depth=MAX_JSON_DEPTH + level)


def has_nul(value: Any) -> bool:
    # PostgreSQL text and jsonb refuse NUL; checked per item so that one such span fails alone.
    try:
        return NUL in orjson.dumps(value)
    except orjson.JSONEncodeError:
        return False  # not storable at all: span_row and metric_body refuse it, saying where


def parse_span_events(payload: Any, *, check_nul: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The intake body (a list of events, or one event) → (span rows, error items).

    `check_nul` (set when the raw body contains an escaped NUL) checks every span for one."""
    events = payload if isinstance(payload, list) else [payload]
    top = "" if isinstance(payload, list) else None
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    # [{"spans": [span]}] or {"spans": [span]}
    check = not storable_below(payload, 3 if top is not None else 2)
    for index, event in enumerate(events):
        base = f"/{index}" if top is not None else ""
        if not isinstance(event, dict):
            errors.append(ItemError(base, "an event must be a JSON object with a `spans` list").item())
            continue
        spans = event.get("spans")
        if not isinstance(spans, list):
            errors.append(ItemError(f"{base}/spans", "spans is required: a list of span objects").item())
            continue
        scope = event.get("_dd.scope")
        scope = scope if isinstance(scope, str) else None
        for position, span in enumerate(spans):
            try:
                if check_nul and has_nul(span):
                    raise ItemError(f"{base}/spans/{position}", "a span must not contain NUL (\\u0000) characters")
                rows.append(span_row(span, f"{base}/spans/{position}", scope=scope, check=check))
            except ItemError as exc:
                errors.append(exc.item())
    return rows, errors


def metric_body(metric: Any, pointer: str, *, span_id: str, trace_id: str, default_source: str = "custom",
                check: bool = True) -> dict[str, Any]:
    """A metric in its stored wire form (what the events routes return); raises ItemError.

    `check=False`: the caller found the whole batch storable already (see storable_below)."""
    label = metric.get("label")
    if not isinstance(label, str) or not label or len(label) > 512:
        raise ItemError(f"{pointer}/label", "label is required: a non-empty string of at most 512 characters")
    metric_type = metric.get("metric_type")
    if metric_type not in METRIC_TYPES:
        raise ItemError(f"{pointer}/metric_type",
                        f"metric_type must be one of {', '.join(METRIC_TYPES)}, got {metric_type!r}")
    key = f"{metric_type}_value"
    value = metric.get(key)
    if value is not None:
        ok = {"score": _is_number(value), "boolean": isinstance(value, bool),
              "categorical": isinstance(value, str), "json": isinstance(value, dict)}[metric_type]
        if not ok:
            kind = {"score": "a number", "boolean": "true or false", "categorical": "a string",
                    "json": "a JSON object"}[metric_type]
            raise ItemError(f"{pointer}/{key}", f"{key} must be {kind} for metric_type {metric_type!r}")
        if metric_type == "score":
            value = float(value)
    timestamp_ms = metric.get("timestamp_ms")
    if not _is_int(timestamp_ms) or not 0 <= timestamp_ms < MAX_BIGINT:
        if isinstance(timestamp_ms, float) and timestamp_ms.is_integer() and 0 <= timestamp_ms < MAX_BIGINT:
            timestamp_ms = int(timestamp_ms)
        else:
            raise ItemError(f"{pointer}/timestamp_ms", "timestamp_ms is required: milliseconds since the epoch")
    tags = metric.get("tags")
    if tags is None:
        tags = []
    elif not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ItemError(f"{pointer}/tags", "tags must be a list of strings")
    assessment = metric.get("assessment")
    if assessment is not None and assessment not in ASSESSMENTS:
        raise ItemError(f"{pointer}/assessment", f"assessment must be pass or fail, got {assessment!r}")
    reasoning = metric.get("reasoning")
    if reasoning is not None and not isinstance(reasoning, str):
        raise ItemError(f"{pointer}/reasoning", "reasoning must be a string")
    metadata = metric.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ItemError(f"{pointer}/metadata", "metadata must be a JSON object")
    error = metric.get("error")
    if error is not None and not isinstance(error, dict):
        raise ItemError(f"{pointer}/error", "error must be an object with a message")
    source = metric.get("metric_source", default_source)
    if not isinstance(source, str) or not source:
        raise ItemError(f"{pointer}/metric_source", "metric_source must be a string such as custom or summary")
    if check:
        _check_storable(metric, pointer)
    body: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "span_id": span_id,
        "trace_id": trace_id,
        "label": label,
        "metric_type": metric_type,
        key: value,
        "timestamp_ms": timestamp_ms,
        "tags": tags,
        "metric_source": source,
        "reasoning": reasoning,
        "metadata": metadata,
    }
    # Optional enums and strings are left out rather than null: the typed model does not allow null there.
    if assessment is not None:
        body["assessment"] = assessment
    for extra in ("eval_source_type", "status", "ml_app"):
        if isinstance(metric.get(extra), str):
            body[extra] = metric[extra]
    if error is not None:
        body["error"] = error
    return body


def metric_row(body: dict[str, Any], *, experiment_pk: int | None) -> dict[str, Any]:
    kind = body["metric_type"]
    value = None if body.get("status") == "ERROR" else body.get(f"{kind}_value")
    number = float(value) if kind in ("boolean", "score") and isinstance(value, (bool, int, float)) else None
    if number is not None and not math.isfinite(number):
        number = None
    return {
        "metric_type": kind,
        "number_value": number,
        "text_value": value if kind == "categorical" and isinstance(value, str) else None,
        "experiment_pk": experiment_pk,
        "span_id": body["span_id"],
        "trace_id": body["trace_id"],
        "label": body["label"],
        "metric_source": body["metric_source"],
        "timestamp_ms": body["timestamp_ms"],
        "body": body,
    }


def parse_eval_metrics(payload: Any, *, check_nul: bool = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The eval-metric intake body → (metric rows, error items)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ItemError("/data", "data is required: {\"type\": \"evaluation_metric\", \"attributes\": {...}}")
    if data.get("type") != "evaluation_metric":
        raise ItemError("/data/type", f"data.type must be 'evaluation_metric', got {data.get('type')!r}")
    attrs = data.get("attributes")
    metrics = attrs.get("metrics") if isinstance(attrs, dict) else None
    if not isinstance(metrics, list):
        raise ItemError("/data/attributes/metrics", "data.attributes.metrics is required: a list of metrics")
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    check = not storable_below(payload, 4)  # {"data": {"attributes": {"metrics": [metric]}}}
    for index, metric in enumerate(metrics):
        pointer = f"/data/attributes/metrics/{index}"
        try:
            if not isinstance(metric, dict):
                raise ItemError(pointer, "a metric must be a JSON object")
            if check_nul and has_nul(metric):
                raise ItemError(pointer, "a metric must not contain NUL (\\u0000) characters")
            join = metric.get("join_on")
            span = join.get("span") if isinstance(join, dict) else None
            if not isinstance(span, dict):
                raise ItemError(f"{pointer}/join_on/span",
                                "join_on.span is required: {\"span_id\": ..., \"trace_id\": ...}")
            span_id = _id_str(span, "span_id", f"{pointer}/join_on/span")
            trace_id = _id_str(span, "trace_id", f"{pointer}/join_on/span")
            rows.append(metric_row(metric_body(metric, pointer, span_id=span_id, trace_id=trace_id, check=check),
                                   experiment_pk=None))
        except ItemError as exc:
            errors.append(exc.item())
    return rows, errors
