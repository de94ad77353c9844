"""Request bodies of the import routes (/api/kennel/v1/datasets/{id}/imports...)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ImportWriteAttributes(BaseModel):
    """`mapping`: each column of the file (CSV header, JSONL key) -> the record field it fills (input,
    expected_output, metadata, tags, id) or `ignore`; a column not named is left out. One must be input.
    `deduplicate`: skip rows without an id whose content the dataset has already."""

    mapping: dict[str, str] = Field(max_length=200)
    deduplicate: bool = False


class ImportWriteData(BaseModel):
    type: Literal["dataset_imports"]
    attributes: ImportWriteAttributes


class ImportWriteRequest(BaseModel):
    data: ImportWriteData


class ImportUpload(BaseModel):
    """The multipart form that stages a file (read by the handler as it arrives; documented here)."""

    file: bytes = Field(description="The records file (CSV or JSONL).", json_schema_extra={"format": "binary"})
