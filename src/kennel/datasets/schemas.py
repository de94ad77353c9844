"""Request bodies of the dataset and record routes (both clients' variants)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from kennel.jsonapi import StorableObject


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refused on both backends so they behave alike.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


# Record ids and tags, as stored and looked up.
NoNulStr = Annotated[str, AfterValidator(_no_nul)]
RecordId = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_no_nul)]


class DatasetAttributesIn(BaseModel):
    name: str = Field(min_length=1, max_length=512)
    description: str | None = None
    metadata: StorableObject | None = None


class DatasetDataIn(BaseModel):
    type: Literal["datasets"]
    attributes: DatasetAttributesIn


class DatasetRequest(BaseModel):
    data: DatasetDataIn


class DatasetUpdateAttributesIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=512)
    description: str | None = None
    metadata: StorableObject | None = None


class DatasetUpdateDataIn(BaseModel):
    type: Literal["datasets"]
    attributes: DatasetUpdateAttributesIn


class DatasetUpdateRequest(BaseModel):
    data: DatasetUpdateDataIn


class DeleteDatasetsAttributesIn(BaseModel):
    dataset_ids: list[str]
    # ddtrace sends "soft"; deletes are always soft here (history stays readable).
    type: Literal["soft", "hard"] | None = None


class DeleteDatasetsDataIn(BaseModel):
    type: Literal["datasets"]
    attributes: DeleteDatasetsAttributesIn


class DeleteDatasetsRequest(BaseModel):
    data: DeleteDatasetsDataIn


class TagOperations(BaseModel):
    add: list[NoNulStr] | None = None
    remove: list[NoNulStr] | None = None
    set: list[NoNulStr] | None = None


class RecordIn(BaseModel):
    """A record to append (typed route) or insert (batch_update)."""

    id: RecordId | None = None
    input: Any = Field(...)
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[NoNulStr] | None = None
    tag_operations: TagOperations | None = None


class RecordUpdateIn(BaseModel):
    """A change to an existing record: a null field means 'leave unchanged'.

    `tags` replaces the record's tags (as `tag_operations.set` does); an item may carry it or
    `tag_operations`, not both (plan.plan_change refuses that).
    """

    id: RecordId
    input: Any = None
    expected_output: Any = None
    metadata: dict[str, Any] | None = None
    tags: list[NoNulStr] | None = None
    tag_operations: TagOperations | None = None


class AppendAttributesIn(BaseModel):
    records: list[RecordIn]
    deduplicate: bool = True


class AppendDataIn(BaseModel):
    type: Literal["records"]
    attributes: AppendAttributesIn


class AppendRequest(BaseModel):
    data: AppendDataIn


class UpdateRecordsAttributesIn(BaseModel):
    records: list[RecordUpdateIn]


class UpdateRecordsDataIn(BaseModel):
    type: Literal["records"]
    attributes: UpdateRecordsAttributesIn


class UpdateRecordsRequest(BaseModel):
    data: UpdateRecordsDataIn


class DeleteRecordsAttributesIn(BaseModel):
    record_ids: list[NoNulStr]


class DeleteRecordsDataIn(BaseModel):
    type: Literal["records"]
    attributes: DeleteRecordsAttributesIn


class DeleteRecordsRequest(BaseModel):
    data: DeleteRecordsDataIn


class BatchUpdateAttributesIn(BaseModel):
    insert_records: list[RecordIn] | None = None
    update_records: list[RecordUpdateIn] | None = None
    delete_records: list[NoNulStr] | None = None
    create_new_version: bool = True
    deduplicate: bool = True
    # Typed client: tags applied to every inserted record.
    tags: list[NoNulStr] | None = None


class BatchUpdateDataIn(BaseModel):
    type: Literal["datasets"]
    # Required by both typed clients' models (Python and TypeScript), and ddtrace always sends it.
    id: str
    attributes: BatchUpdateAttributesIn


class BatchUpdateRequest(BaseModel):
    data: BatchUpdateDataIn
