"""Request bodies. Pydantic checks shapes and types; the label-schema and annotation rules, which need
the queue's state and produce per-label messages, live in `validation.py`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

LabelType = Literal["boolean", "categorical", "score", "text"]


class LabelSchemaIn(BaseModel):
    name: str
    type: LabelType
    id: str | None = None
    description: str | None = None
    has_assessment: bool | None = None
    has_reasoning: bool | None = None
    is_assessment: bool | None = None
    is_integer: bool | None = None
    is_required: bool | None = None
    max: float | None = None
    min: float | None = None
    values: list[str] | None = None


class AnnotationSchemaIn(BaseModel):
    label_schemas: list[LabelSchemaIn]


class QueueAttributesIn(BaseModel):
    project_id: str = Field(min_length=1)
    name: str = Field(min_length=1, max_length=512)
    description: str | None = None
    annotation_schema: AnnotationSchemaIn | None = None
    reviewer_emails: list[str] | None = None
    restrict_to_assignees: bool | None = None
    restrict_to_reviewers: bool | None = None


class QueueDataIn(BaseModel):
    type: Literal["queues"]
    attributes: QueueAttributesIn


class QueueRequest(BaseModel):
    data: QueueDataIn


class QueueUpdateAttributesIn(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=512)
    description: str | None = None
    annotation_schema: AnnotationSchemaIn | None = None
    reviewer_emails: list[str] | None = None
    restrict_to_assignees: bool | None = None
    restrict_to_reviewers: bool | None = None


class QueueUpdateDataIn(BaseModel):
    type: Literal["queues"]
    attributes: QueueUpdateAttributesIn


class QueueUpdateRequest(BaseModel):
    data: QueueUpdateDataIn


class LabelSchemaUpdateAttributesIn(BaseModel):
    annotation_schema: AnnotationSchemaIn


class LabelSchemaUpdateDataIn(BaseModel):
    type: Literal["queues"]
    attributes: LabelSchemaUpdateAttributesIn


class LabelSchemaUpdateRequest(BaseModel):
    data: LabelSchemaUpdateDataIn


class InteractionsAttributesIn(BaseModel):
    # Items are checked one by one in validation.py: the rules depend on each item's type.
    interactions: list[dict[str, Any]]


class InteractionsDataIn(BaseModel):
    type: Literal["interactions"]
    attributes: InteractionsAttributesIn


class InteractionsRequest(BaseModel):
    data: InteractionsDataIn


class DeleteInteractionsAttributesIn(BaseModel):
    interaction_ids: list[str]


class DeleteInteractionsDataIn(BaseModel):
    type: Literal["interactions"]
    attributes: DeleteInteractionsAttributesIn


class DeleteInteractionsRequest(BaseModel):
    data: DeleteInteractionsDataIn


class LabelValueIn(BaseModel):
    label_schema_id: str
    value: Any
    # Checked per item (an invalid assessment rejects that item only, not the batch).
    assessment: Any = None
    reasoning: Any = None


class UpsertAnnotationIn(BaseModel):
    interaction_id: str
    label_values: list[LabelValueIn]


class AnnotationsAttributesIn(BaseModel):
    annotations: list[UpsertAnnotationIn]


class AnnotationsDataIn(BaseModel):
    type: Literal["annotations"]
    attributes: AnnotationsAttributesIn


class AnnotationsRequest(BaseModel):
    data: AnnotationsDataIn


class DeleteAnnotationsAttributesIn(BaseModel):
    annotation_ids: list[str]


class DeleteAnnotationsDataIn(BaseModel):
    type: Literal["annotations"]
    attributes: DeleteAnnotationsAttributesIn


class DeleteAnnotationsRequest(BaseModel):
    data: DeleteAnnotationsDataIn
