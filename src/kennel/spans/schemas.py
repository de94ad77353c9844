from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
