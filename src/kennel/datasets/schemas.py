"""Request bodies of the dataset and record routes (both clients' variants)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from kennel.jsonapi import StorableObject


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; refused on both backends so they behave alike.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


def refused(reason: str) -> Callable[[Any], None]:
    """The check of a field that is a 400 when given (null aside) where ignoring it would silently lose
    what the client meant. Such fields are left out of /openapi.json: they are not part of the route."""

    def check(value: Any) -> None:
        if value is not None:
            raise PydanticCustomError("refused", reason)

    return check


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
    # Tags added to every record, as batch_update's `tags` are to its inserts.
    tags: list[NoNulStr] | None = None


class AppendDataIn(BaseModel):
    type: Literal["records"]
    attributes: AppendAttributesIn


class AppendRequest(BaseModel):
    data: AppendDataIn


class UpdateRecordsAttributesIn(BaseModel):
    records: list[RecordUpdateIn]
    # batch_update's `tags` go to its inserts; this route has none, and whether tags here were meant to be
    # added to or to replace each record's cannot be guessed.
    tags: SkipJsonSchema[Annotated[Any, AfterValidator(refused(
        "tags are not taken for all records at once here: give each item of records its own tags (the "
        "record's new tags) or tag_operations; nothing was changed"))]] = None


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
