"""Request bodies of the queue owner's routes (/api/kennel/v1/annotation-queues/{id}/...)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from kennel.annotations.schemas import LabelValueIn


class AdjudicationAttributesIn(BaseModel):
    # The gold values, shaped as a reviewer's label values; labels left out have no gold value.
    label_values: list[LabelValueIn] = Field(min_length=1)


class AdjudicationDataIn(BaseModel):
    type: Literal["adjudications"]
    attributes: AdjudicationAttributesIn


class AdjudicationRequest(BaseModel):
    data: AdjudicationDataIn


class ToDatasetAttributesIn(BaseModel):
    # Exactly one of these: an existing dataset of the queue's project, or a name (made if new).
    dataset_id: str | None = None
    dataset_name: str | None = None
    # agreed: complete (at least reviewers_per_item reviewers) and in agreement on every label;
    # adjudicated: items with a gold value; all: every annotated item.
    items: Literal["agreed", "adjudicated", "all"] = "agreed"
    reviewers_per_item: int = Field(default=2, ge=1, le=100)
    expected_output_from: Literal["gold_or_consensus", "gold", "consensus"] = "gold_or_consensus"
    # One label's value as the expected output, instead of every label's by name.
    label: str | None = None
    # Answer with the mapping of the first records and the count, and write nothing.
    preview: bool = False


class ToDatasetDataIn(BaseModel):
    type: Literal["to_dataset"]
    attributes: ToDatasetAttributesIn


class ToDatasetRequest(BaseModel):
    data: ToDatasetDataIn
