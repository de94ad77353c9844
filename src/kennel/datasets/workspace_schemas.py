"""Request bodies of the dataset workspace's Kennel routes (/api/kennel/v1/datasets/...), and the answers
that /openapi.json documents."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from kennel.datasets.schemas import NoNulStr, RecordId, refused


class RecordSaveAttributesIn(BaseModel):
    """A record's whole new content. `base_revision` is the revision the edit was made on (the
    `revision` the record was read with): if the record has changed since, nothing is saved (409)."""

    id: RecordId
    input: Any = Field(...)
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[NoNulStr] = Field(default_factory=list)
    # A save replaces the tags whole (none when `tags` is left out): operations sent along would be lost.
    tag_operations: SkipJsonSchema[Annotated[Any, AfterValidator(refused(
        "a save replaces the record whole: send its tags as tags (the full list); tag_operations is not "
        "taken here; nothing was saved"))]] = None
    base_revision: str | None = Field(default=None, pattern=r"^[0-9]{1,18}$")


class RecordSaveDataIn(BaseModel):
    type: Literal["records"]
    attributes: RecordSaveAttributesIn


class RecordSaveRequest(BaseModel):
    data: RecordSaveDataIn


# Answers (documented in /openapi.json; the routes render them with jsonapi.respond) ------------------

class VersionAttributes(BaseModel):
    """One version of a dataset, with the facts written with it."""

    version: int
    created_at: str = Field(description="ISO 8601, UTC")
    last_used: str | None = Field(description="when an experiment last referenced this version")
    added: int = Field(description="records this version added")
    changed: int = Field(description="records whose content or tags this version changed")
    deleted: int = Field(description="records this version deleted")
    record_count: int = Field(description="records in the dataset at this version")
    author: str | None = Field(description="who made the version (user name, or key pair name); a restore's "
                                           "author is who restored")
    author_id: str | None = Field(description="the id of that user or key pair")


class VersionResource(BaseModel):
    id: str
    type: Literal["dataset_versions"]
    attributes: VersionAttributes


class VersionListMeta(BaseModel):
    after: str = Field(description="page[cursor] of the next (older) page; empty on the last page")
    current_version: int


class VersionListResponse(BaseModel):
    data: list[VersionResource]
    meta: VersionListMeta
