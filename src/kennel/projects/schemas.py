from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ProjectAttributesIn(BaseModel):
    name: str = Field(min_length=1, max_length=512)
    description: str | None = None


class ProjectDataIn(BaseModel):
    type: Literal["projects"]
    attributes: ProjectAttributesIn


class ProjectRequest(BaseModel):
    data: ProjectDataIn


class ProjectUpdateAttributesIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=512)
    description: str | None = None


class ProjectUpdateDataIn(BaseModel):
    type: Literal["projects"]
    attributes: ProjectUpdateAttributesIn


class ProjectUpdateRequest(BaseModel):
    data: ProjectUpdateDataIn


class DeleteProjectsAttributesIn(BaseModel):
    project_ids: list[str]


class DeleteProjectsDataIn(BaseModel):
    type: Literal["projects"]
    attributes: DeleteProjectsAttributesIn


class DeleteProjectsRequest(BaseModel):
    data: DeleteProjectsDataIn
