"""Request bodies of the dataset workspace's Kennel routes (/api/kennel/v1/datasets/...)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kennel.datasets.schemas import NoNulStr, RecordId


class RecordSaveAttributesIn(BaseModel):
    """A record's whole new content. `base_revision` is the revision the edit was made on (the
    `revision` the record was read with): if the record has changed since, nothing is saved (409)."""

    id: RecordId
    input: Any = Field(...)
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[NoNulStr] = Field(default_factory=list)
    base_revision: str | None = Field(default=None, pattern=r"^[0-9]{1,18}$")


class RecordSaveDataIn(BaseModel):
    type: Literal["records"]
    attributes: RecordSaveAttributesIn


class RecordSaveRequest(BaseModel):
    data: RecordSaveDataIn
