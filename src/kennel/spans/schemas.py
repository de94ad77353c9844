from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel


class SpanFilterIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(default=None, alias="from")
    to: str | None = None
    query: str | None = None
    span_id: str | None = None
    trace_id: str | None = None
    span_kind: str | None = None
    span_name: str | None = None
    ml_app: str | None = None
    tags: dict[str, str] | None = None


class SpanSearchOptionsIn(BaseModel):
    include_attachments: bool | None = None
    time_offset: int | None = None


class SpanPageIn(BaseModel):
    cursor: str | None = None
    limit: int | None = Field(default=None, ge=1, le=5000)


class SpanSearchAttributesIn(BaseModel):
    filter: SpanFilterIn | None = None
    options: SpanSearchOptionsIn | None = None
    page: SpanPageIn | None = None
    sort: str | None = None


class SpanSearchDataIn(BaseModel):
    type: Literal["spans"]
    attributes: SpanSearchAttributesIn


class SpanSearchRequest(BaseModel):
    data: SpanSearchDataIn


# The intake routes check their bodies by hand (spans.intake: hundreds of spans per request, each kept
# verbatim); these models only describe those checks for /openapi.json. Members not named are kept.

IntakeId = Annotated[str, Field(min_length=1, max_length=64)] | Annotated[int, Field(ge=0)]
JsonObject = dict[str, Any]


class IntakeSpanIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    trace_id: IntakeId
    span_id: IntakeId
    parent_id: str | int | None = None
    name: str = Field(min_length=1, max_length=512)
    start_ns: int = Field(ge=0, lt=2**63, description="nanoseconds since the epoch")
    duration: float = Field(ge=0, description="nanoseconds")
    status: Literal["ok", "error"] = "ok"
    meta: JsonObject | None = None
    tags: list[str] | None = None
    metrics: JsonObject | None = None
    session_id: str | None = None
    ml_app: str | None = None


class IntakeSpanEventIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    spans: list[IntakeSpanIn]
    scope: str | None = Field(default=None, alias="_dd.scope")


class SpanIntakeRequest(RootModel[IntakeSpanEventIn | list[IntakeSpanEventIn]]):
    """One event or a list of them; valid spans are kept even when others in the request are not."""


class IntakeJoinSpanIn(BaseModel):
    span_id: IntakeId
    trace_id: IntakeId


class IntakeJoinOnIn(BaseModel):
    span: IntakeJoinSpanIn


class IntakeMetricIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    join_on: IntakeJoinOnIn
    label: str = Field(min_length=1, max_length=512)
    metric_type: Literal["score", "categorical", "boolean", "json"]
    score_value: float | None = None
    categorical_value: str | None = None
    boolean_value: bool | None = None
    json_value: JsonObject | None = None
    timestamp_ms: int = Field(ge=0, lt=2**63, description="milliseconds since the epoch")
    tags: list[str] | None = None
    assessment: Literal["pass", "fail"] | None = None
    reasoning: str | None = None
    metadata: JsonObject | None = None
    error: JsonObject | None = None
    metric_source: str = Field(default="custom", min_length=1)
    eval_source_type: str | None = None
    status: str | None = None
    ml_app: str | None = None


class IntakeMetricsAttributesIn(BaseModel):
    metrics: list[IntakeMetricIn]


class IntakeMetricsDataIn(BaseModel):
    type: Literal["evaluation_metric"]
    attributes: IntakeMetricsAttributesIn


class EvalMetricIntakeRequest(BaseModel):
    """Valid metrics are kept even when others in the request are not."""

    data: IntakeMetricsDataIn
