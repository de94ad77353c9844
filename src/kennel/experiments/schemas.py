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


# The Kennel namespace: comparing runs (/api/kennel/v1/experiments/...) -------------------------------

class RowFilterIn(BaseModel):
    """Which records an action applies to, when `record_ids` is not given (as the compare URL says)."""
    metric: str | None = None
    vs: str | None = None
    outcome: str | None = "regressed"
    value: str | None = None
    errors: bool = False


class CompareSelectionIn(BaseModel):
    runs: list[str] = Field(min_length=2)
    baseline: str | None = None
    record_ids: list[str] | None = None
    filter: RowFilterIn | None = None


class QueueActionAttributesIn(CompareSelectionIn):
    run: str | None = Field(default=None, description="whose traces go to the queue; default the first run "
                                                      "after the baseline")
    queue_id: str | None = None
    queue_name: str | None = Field(default=None, min_length=1, max_length=512)


class QueueActionDataIn(BaseModel):
    type: Literal["annotation_queue_actions"]
    attributes: QueueActionAttributesIn


class QueueActionRequest(BaseModel):
    data: QueueActionDataIn


class PairwiseAttributesIn(CompareSelectionIn):
    a: str
    b: str
    queue_name: str = Field(min_length=1, max_length=512)


class PairwiseDataIn(BaseModel):
    type: Literal["pairwise_queue_actions"]
    attributes: PairwiseAttributesIn


class PairwiseRequest(BaseModel):
    data: PairwiseDataIn


class DatasetVersionAttributesIn(CompareSelectionIn):
    run: str = Field(description="whose outputs become the expected outputs")
    dataset_id: str = Field(min_length=1)


class DatasetVersionDataIn(BaseModel):
    type: Literal["dataset_version_actions"]
    attributes: DatasetVersionAttributesIn


class DatasetVersionRequest(BaseModel):
    data: DatasetVersionDataIn


class MetricDirectionAttributesIn(BaseModel):
    project_id: str = Field(min_length=1)
    label: str = Field(min_length=1, max_length=512)
    higher_is_better: bool


class MetricDirectionDataIn(BaseModel):
    type: Literal["metric_directions"]
    attributes: MetricDirectionAttributesIn


class MetricDirectionRequest(BaseModel):
    data: MetricDirectionDataIn
