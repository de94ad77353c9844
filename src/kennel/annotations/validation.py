"""The rules of label schemas, display blocks and annotation values.

Schema and interaction problems reject the whole request (400 naming the label or block, the rule,
and a JSON pointer). Annotation problems are per item: `check_annotation` returns a message, and
the caller reports it in the response's `errors` without storing that item.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Any

import orjson

from kennel.annotations.schemas import LabelSchemaIn, LabelValueIn
from kennel.db.base import new_id
from kennel.errors import Invalid
from kennel.jsonapi import ORJSON_MAX_DEPTH, check_storable

LABEL_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
TRACE_TYPES = ("trace", "session", "experiment_trace")
BLOCK_TYPES = ("frontend", "header", "image", "json", "llmobs_trace", "markdown", "text", "widget")
HEADER_LEVELS = ("sm", "md", "lg", "xl")
ASSESSMENTS = ("pass", "fail")
# Beyond 2**53 an integer score cannot round-trip through a float (the typed client's number type).
MAX_EXACT_INT = 2**53

# Optional label fields kept on the wire only when set, so a schema reads back as it was written.
_OPTIONAL_LABEL_FIELDS = ("description", "has_assessment", "has_reasoning", "is_assessment", "is_integer",
                          "is_required", "min", "max", "values")


def _fail(label: str, rule: str, pointer: str, errors: list[dict[str, Any]]) -> None:
    errors.append({"status": "400", "title": "Bad Request", "detail": f"label {label!r}: {rule}",
                   "source": {"pointer": pointer}})


def normalize_label_schemas(labels: Sequence[LabelSchemaIn], existing: Sequence[dict[str, Any]],
                            *, pointer: str) -> list[dict[str, Any]]:
    """Check every rule of a label schema and return it as stored, with stable label ids.

    All problems are reported at once (the first as the error, the rest alongside it). A label
    keeps the id of the existing label with its name; otherwise the id it names, if that id is an
    existing label's or unused; otherwise a new one.
    """
    errors: list[dict[str, Any]] = []
    seen_names: dict[str, int] = {}
    for index, label in enumerate(labels):
        at = f"{pointer}/{index}"
        name = label.name
        if not LABEL_NAME.match(name):
            _fail(name, "name must match ^[a-zA-Z0-9_-]+$ (letters, digits, '_' and '-')", f"{at}/name", errors)
        if name in seen_names:
            _fail(name, f"name is not unique in the queue (also label {seen_names[name]})", f"{at}/name", errors)
        seen_names.setdefault(name, index)
        if label.type == "categorical":
            if not label.values:
                _fail(name, "a categorical label needs at least one value in `values`", f"{at}/values", errors)
            else:
                seen_values: set[str] = set()
                for vi, value in enumerate(label.values):
                    if not value.strip():
                        _fail(name, f"categorical values must be non-empty (value {vi} is empty)",
                              f"{at}/values/{vi}", errors)
                    elif value in seen_values:
                        _fail(name, f"categorical values must be unique ({value!r} appears twice)",
                              f"{at}/values/{vi}", errors)
                    seen_values.add(value)
        elif label.values is not None:
            _fail(name, f"`values` applies to categorical labels only, not {label.type}", f"{at}/values", errors)
        if label.type == "score":
            for bound in ("min", "max"):
                value = getattr(label, bound)
                if value is not None and not math.isfinite(value):
                    _fail(name, f"`{bound}` must be a finite number", f"{at}/{bound}", errors)
            if label.min is not None and label.max is not None and not label.min < label.max:
                _fail(name, f"score `min` ({label.min:g}) must be less than `max` ({label.max:g})",
                      f"{at}/min", errors)
        else:
            for bound in ("min", "max"):
                if getattr(label, bound) is not None:
                    _fail(name, f"`{bound}` applies to score labels only, not {label.type}", f"{at}/{bound}", errors)
            if label.is_integer:
                _fail(name, f"`is_integer` applies to score labels only, not {label.type}",
                      f"{at}/is_integer", errors)
        if label.is_assessment and not label.has_assessment:
            _fail(name, "`is_assessment` requires `has_assessment` to be true", f"{at}/is_assessment", errors)
    if errors:
        raise Invalid(errors[0]["detail"], pointer=errors[0]["source"]["pointer"], errors=errors[1:])
    return _assign_ids(labels, existing)


def _assign_ids(labels: Sequence[LabelSchemaIn], existing: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {old["name"]: old["id"] for old in existing}
    taken = {by_name[label.name] for label in labels if label.name in by_name}
    out: list[dict[str, Any]] = []
    for label in labels:
        if label.name in by_name:
            label_id = by_name[label.name]
        elif label.id and len(label.id) <= 64 and label.id not in taken:
            # A renamed label sent back with its id keeps it; an id the caller chose is honoured.
            label_id = label.id
        else:
            label_id = new_id()
        taken.add(label_id)
        stored: dict[str, Any] = {"id": label_id, "name": label.name, "type": label.type}
        for field in _OPTIONAL_LABEL_FIELDS:
            value = getattr(label, field)
            if value is not None:
                stored[field] = value
        out.append(stored)
    return out


def check_emails(emails: Sequence[str], *, pointer: str) -> list[str]:
    for index, email in enumerate(emails):
        if not EMAIL.match(email):
            raise Invalid(f"reviewer_emails[{index}] {email!r} is not an email address", pointer=f"{pointer}/{index}")
    return list(emails)


# --- interactions -------------------------------------------------------------------------------


def _block_error(index: int, block_type: str, rule: str, pointer: str) -> Invalid:
    return Invalid(f"display_block[{index}] ({block_type}): {rule}", pointer=pointer)


def _check_block(block: Any, index: int, at: str) -> dict[str, Any]:
    if not isinstance(block, dict):
        raise Invalid(f"display_block[{index}] must be an object", pointer=at)
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        raise Invalid(f"display_block[{index}].type must be one of {', '.join(BLOCK_TYPES)}, got {kind!r}",
                      pointer=f"{at}/type")

    def need_string(field: str, *, required: bool) -> None:
        value = block.get(field)
        if value is None:
            if required:
                raise _block_error(index, kind, f"`{field}` is required", f"{at}/{field}")
            return
        if not isinstance(value, str):
            raise _block_error(index, kind, f"`{field}` must be a string", f"{at}/{field}")
        if required and not value:
            raise _block_error(index, kind, f"`{field}` must be a non-empty string", f"{at}/{field}")

    if kind in ("markdown", "text", "header"):
        if not isinstance(block.get("content"), str):
            raise _block_error(index, kind, "`content` must be a string", f"{at}/content")
    if kind == "header" and block.get("level") is not None and block["level"] not in HEADER_LEVELS:
        raise _block_error(index, kind, f"`level` must be one of {', '.join(HEADER_LEVELS)}, got {block['level']!r}",
                           f"{at}/level")
    if kind == "json" and "content" not in block:
        raise _block_error(index, kind, "`content` is required (any JSON value)", f"{at}/content")
    if kind == "image":
        need_string("url", required=True)
    need_string("alt", required=False)
    if kind == "widget" and block.get("tileDef") is None:
        raise _block_error(index, kind, "`tileDef` is required", f"{at}/tileDef")
    if kind == "llmobs_trace":
        need_string("traceId", required=True)
        itype = block.get("interactionType")
        if itype is not None and itype not in ("trace", "experiment_trace"):
            raise _block_error(index, kind, f"`interactionType` must be trace or experiment_trace, got {itype!r}",
                               f"{at}/interactionType")
    if kind == "frontend":
        need_string("code", required=True)
    need_string("label", required=False)
    height = block.get("height")
    if height is not None and (isinstance(height, bool) or not isinstance(height, int) or height <= 0):
        raise _block_error(index, kind, f"`height` must be a positive integer, got {height!r}", f"{at}/height")
    frame = block.get("timeFrame")
    if frame is not None:
        if not isinstance(frame, dict) or not all(
                isinstance(frame.get(k), int) and not isinstance(frame.get(k), bool) for k in ("start", "end")):
            raise _block_error(index, kind, "`timeFrame` needs integer `start` and `end` (Unix milliseconds)",
                               f"{at}/timeFrame")
        if frame["start"] > frame["end"]:
            raise _block_error(index, kind, "`timeFrame.start` must not be after `end`", f"{at}/timeFrame")
    return block


def display_block_content_id(blocks: list[dict[str, Any]], *, pointer: str) -> str:
    """The same blocks always give the same id (key order does not matter), so re-adding finds them."""
    try:
        canonical = orjson.dumps(blocks, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        check_storable(blocks, pointer=pointer, max_depth=ORJSON_MAX_DEPTH)
        raise Invalid("display_block cannot be stored", pointer=pointer) from None
    return hashlib.sha256(canonical).hexdigest()


def normalize_interactions(items: Sequence[dict[str, Any]], *, pointer: str) -> list[dict[str, Any]]:
    """Check each item and return `{type, content_id, display_block}` dicts, in request order."""
    if not items:
        raise Invalid("interactions must contain at least one interaction", pointer=pointer)
    out = []
    for index, item in enumerate(items):
        at = f"{pointer}/{index}"
        kind = item.get("type")
        if kind in TRACE_TYPES:
            content_id = item.get("content_id")
            if not isinstance(content_id, str) or not content_id.strip():
                raise Invalid(f"interactions[{index}]: a {kind} interaction needs a non-empty string `content_id`",
                              pointer=f"{at}/content_id")
            if len(content_id) > 255:
                raise Invalid(f"interactions[{index}]: `content_id` is longer than 255 characters",
                              pointer=f"{at}/content_id")
            if item.get("display_block") is not None:
                raise Invalid(f"interactions[{index}]: `display_block` applies to display_block interactions only",
                              pointer=f"{at}/display_block")
            out.append({"type": kind, "content_id": content_id, "display_block": None})
        elif kind == "display_block":
            if item.get("content_id") is not None:
                raise Invalid(f"interactions[{index}]: omit `content_id` for a display_block interaction; "
                              "the server derives it from the blocks", pointer=f"{at}/content_id")
            blocks = item.get("display_block")
            if not isinstance(blocks, list) or not blocks:
                raise Invalid(f"interactions[{index}]: `display_block` must be a list of at least one block",
                              pointer=f"{at}/display_block")
            checked = [_check_block(b, bi, f"{at}/display_block/{bi}") for bi, b in enumerate(blocks)]
            content_id = display_block_content_id(checked, pointer=f"{at}/display_block")
            out.append({"type": kind, "content_id": content_id, "display_block": checked})
        else:
            raise Invalid(f"interactions[{index}].type must be one of trace, session, experiment_trace, "
                          f"display_block; got {kind!r}", pointer=f"{at}/type")
    return out


# --- annotations --------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_value(label: dict[str, Any], value: Any) -> str | None:
    """The rule `value` breaks for this label, or None."""
    kind = label["type"]
    if kind == "boolean":
        return None if isinstance(value, bool) else f"a boolean label needs true or false, got {value!r}"
    if kind == "text":
        if isinstance(value, str) and value.strip():
            return None
        return f"a text label needs a non-empty string, got {value!r}"
    if kind == "categorical":
        allowed = label.get("values") or []
        chosen = value if isinstance(value, list) and value else [value]
        for one in chosen:
            if not isinstance(one, str) or one not in allowed:
                return f"categorical value {one!r} is not one of its values {allowed}"
        if len(set(chosen)) != len(chosen):
            return "categorical values must not repeat"
        return None
    # score
    if not _is_number(value):
        return f"a score label needs a number, got {value!r}"
    if (isinstance(value, int) and abs(value) > MAX_EXACT_INT) or not math.isfinite(value):
        return "a score must be a finite number of sensible size"
    low, high = label.get("min"), label.get("max")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        return f"score {value:g} is outside [{lo}, {hi}]"
    if label.get("is_integer") and value != int(value):
        return f"score {value:g} is not an integer (is_integer is set)"
    return None


def check_annotation(values: Sequence[LabelValueIn], labels_by_id: dict[str, dict[str, Any]],
                     required: Sequence[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """Check one annotation's label values; return them as stored, or the first rule they break.

    Stored values are keyed by label id, the shape reads show, so reads pass the stored JSON through.
    """
    if not values:
        return None, "label_values must contain at least one label value"
    stored: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for lv in values:
        label = labels_by_id.get(lv.label_schema_id)
        if label is None:
            return None, f"unknown label: no label with id {lv.label_schema_id!r} in this queue's label schema"
        name = label["name"]
        if lv.label_schema_id in seen:
            return None, f"label {name!r}: given more than once"
        seen.add(lv.label_schema_id)
        problem = _check_value(label, lv.value)
        if problem:
            return None, f"label {name!r}: {problem}"
        entry: dict[str, Any] = {"value": lv.value, "name_when_saved": name, "type": label["type"]}
        if lv.assessment is not None:
            if not label.get("has_assessment"):
                return None, f"label {name!r}: an assessment is given but the label has no assessment (has_assessment)"
            if lv.assessment not in ASSESSMENTS:
                return None, f"label {name!r}: assessment must be pass or fail, got {lv.assessment!r}"
            entry["assessment"] = lv.assessment
        if lv.reasoning is not None:
            if not label.get("has_reasoning"):
                return None, f"label {name!r}: reasoning is given but the label has no reasoning (has_reasoning)"
            if not isinstance(lv.reasoning, str):
                return None, f"label {name!r}: reasoning must be a string"
            entry["reasoning"] = lv.reasoning
        stored[lv.label_schema_id] = entry
    for label in required:
        if label["id"] not in seen:
            return None, f"label {label['name']!r}: missing, and the label is required (is_required)"
    return stored, None
