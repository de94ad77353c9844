"""Request body of the import write route (/api/kennel/v1/datasets/{id}/imports/{import_id}/write)."""

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
