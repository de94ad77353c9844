from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kennel.jsonapi import StorableObject

Status = Literal["running", "completed", "failed", "interrupted"]


class ExperimentAttributesIn(BaseModel):
    name: str = Field(min_length=1, max_length=480)
    project_id: str = Field(min_length=1)
    dataset_id: str | None = None
    # A version number is stored as a 64-bit integer on both databases.
    dataset_version: int | None = Field(default=None, ge=0, le=2**63 - 1)
    description: str | None = None
    config: StorableObject | None = None
    metadata: StorableObject | None = None
    ensure_unique: bool = True
    run_count: int | None = Field(default=None, ge=1, le=2147483647)
    parent_experiment_id: str | None = None


class ExperimentDataIn(BaseModel):
    type: Literal["experiments"]
    attributes: ExperimentAttributesIn


class ExperimentRequest(BaseModel):
    data: ExperimentDataIn


class ExperimentUpdateAttributesIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=512)
    description: str | None = None
    dataset_id: str | None = None
    metadata: StorableObject | None = None
    status: Status | None = None
    error: str | None = None


class ExperimentUpdateDataIn(BaseModel):
    type: Literal["experiments"]
    attributes: ExperimentUpdateAttributesIn


class ExperimentUpdateRequest(BaseModel):
    data: ExperimentUpdateDataIn


class DeleteExperimentsAttributesIn(BaseModel):
    experiment_ids: list[str]


class DeleteExperimentsDataIn(BaseModel):
    type: Literal["experiments"]
    attributes: DeleteExperimentsAttributesIn


class DeleteExperimentsRequest(BaseModel):
    data: DeleteExperimentsDataIn


class EventsAttributesIn(BaseModel):
    # Metrics and spans are checked item by item in the service (the same checks as the intake),
    # so that a 400 can point at the exact metric and field.
    scope: str | None = None
    metrics: list[Any] | None = None
    spans: list[Any] | None = None
    tags: list[str] | None = None


class EventsDataIn(BaseModel):
    # The typed client sends "events", ddtrace sends "experiments".
    type: Literal["events", "experiments"]
    attributes: EventsAttributesIn


class EventsRequest(BaseModel):
    data: EventsDataIn
