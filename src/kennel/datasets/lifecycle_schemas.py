"""Request bodies of the dataset lifecycle routes (restore, clone)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class RestoreAttributesIn(BaseModel):
    # The typed client sends numbers as floats (3.0); lax int accepts integral floats only.
    dataset_version: int


class RestoreDataIn(BaseModel):
    type: Literal["datasets"]
    # The typed client always sends the dataset id; the path names it already, so it is optional here.
    id: str | None = None
    attributes: RestoreAttributesIn


class RestoreRequest(BaseModel):
    data: RestoreDataIn


class CloneAttributesIn(BaseModel):
    name: str = Field(min_length=1, max_length=512)
    description: str | None = None


class CloneDataIn(BaseModel):
    type: Literal["datasets"]
    id: str | None = None
    attributes: CloneAttributesIn


class CloneRequest(BaseModel):
    data: CloneDataIn
