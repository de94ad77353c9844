"""Shared builders for the annotation queue tests: typed-client requests and a ready-made queue."""

from __future__ import annotations

from typing import Any

import pytest
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v2.model.llm_obs_annotation_label_value import LLMObsAnnotationLabelValue
from datadog_api_client.v2.model.llm_obs_annotation_queue_data_attributes_request import (
    LLMObsAnnotationQueueDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_data_request import LLMObsAnnotationQueueDataRequest
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_data_attributes_request import (
    LLMObsAnnotationQueueInteractionsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_data_request import (
    LLMObsAnnotationQueueInteractionsDataRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_request import (
    LLMObsAnnotationQueueInteractionsRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_interactions_type import (
    LLMObsAnnotationQueueInteractionsType,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_attributes import (
    LLMObsAnnotationQueueLabelSchemaUpdateAttributes,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_data import (
    LLMObsAnnotationQueueLabelSchemaUpdateData,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_label_schema_update_request import (
    LLMObsAnnotationQueueLabelSchemaUpdateRequest,
)
from datadog_api_client.v2.model.llm_obs_annotation_queue_request import LLMObsAnnotationQueueRequest
from datadog_api_client.v2.model.llm_obs_annotation_queue_type import LLMObsAnnotationQueueType
from datadog_api_client.v2.model.llm_obs_annotation_schema import LLMObsAnnotationSchema
from datadog_api_client.v2.model.llm_obs_annotations_data_attributes_request import (
    LLMObsAnnotationsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_annotations_data_request import LLMObsAnnotationsDataRequest
from datadog_api_client.v2.model.llm_obs_annotations_request import LLMObsAnnotationsRequest
from datadog_api_client.v2.model.llm_obs_annotations_type import LLMObsAnnotationsType
from datadog_api_client.v2.model.llm_obs_content_block import LLMObsContentBlock
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_data_attributes_request import (
    LLMObsDeleteAnnotationQueueInteractionsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_data_request import (
    LLMObsDeleteAnnotationQueueInteractionsDataRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotation_queue_interactions_request import (
    LLMObsDeleteAnnotationQueueInteractionsRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotations_data_attributes_request import (
    LLMObsDeleteAnnotationsDataAttributesRequest,
)
from datadog_api_client.v2.model.llm_obs_delete_annotations_data_request import LLMObsDeleteAnnotationsDataRequest
from datadog_api_client.v2.model.llm_obs_delete_annotations_request import LLMObsDeleteAnnotationsRequest
from datadog_api_client.v2.model.llm_obs_display_block_interaction_item import LLMObsDisplayBlockInteractionItem
from datadog_api_client.v2.model.llm_obs_display_block_interaction_type import LLMObsDisplayBlockInteractionType
from datadog_api_client.v2.model.llm_obs_label_schema import LLMObsLabelSchema
from datadog_api_client.v2.model.llm_obs_label_schema_type import LLMObsLabelSchemaType
from datadog_api_client.v2.model.llm_obs_project_data_attributes_request import LLMObsProjectDataAttributesRequest
from datadog_api_client.v2.model.llm_obs_project_data_request import LLMObsProjectDataRequest
from datadog_api_client.v2.model.llm_obs_project_request import LLMObsProjectRequest
from datadog_api_client.v2.model.llm_obs_project_type import LLMObsProjectType
from datadog_api_client.v2.model.llm_obs_trace_interaction_item import LLMObsTraceInteractionItem
from datadog_api_client.v2.model.llm_obs_trace_interaction_type import LLMObsTraceInteractionType
from datadog_api_client.v2.model.llm_obs_upsert_annotation_item import LLMObsUpsertAnnotationItem

from tests.conftest import unique

QUEUES = "/api/v2/llm-obs/v1/annotation-queues"
SUITE_KEY = "test-suite"  # the name of the key the server fixture creates
T = LLMObsLabelSchemaType


# --- helpers: typed-client request builders ----------------------------------------------------


def parsed(resp: Any) -> Any:
    """The typed client silently keeps what it cannot deserialize; fail loudly instead."""
    assert not getattr(resp, "_unparsed", False), f"typed client could not parse: {resp}"
    return resp


def project(typed) -> str:
    return typed.create_llm_obs_project(LLMObsProjectRequest(data=LLMObsProjectDataRequest(
        attributes=LLMObsProjectDataAttributesRequest(name=unique("aq-proj")),
        type=LLMObsProjectType.PROJECTS))).data.id


def label(name: str, kind: LLMObsLabelSchemaType, **kw: Any) -> LLMObsLabelSchema:
    return LLMObsLabelSchema(name=name, type=kind, **kw)


def standard_labels() -> list[LLMObsLabelSchema]:
    return [
        label("quality", T.SCORE, min=1.0, max=5.0, is_integer=True, is_required=True),
        label("topic", T.CATEGORICAL, values=["billing", "shipping"]),
        label("correct", T.BOOLEAN, has_assessment=True, is_assessment=True, has_reasoning=True),
        label("notes", T.TEXT, description="free text"),
    ]


def create_queue(typed, project_id: str | None = None, labels: list[LLMObsLabelSchema] | None = None,
                 **kw: Any):
    attrs = LLMObsAnnotationQueueDataAttributesRequest(
        project_id=project_id or project(typed), name=kw.pop("name", unique("queue")), **kw)
    if labels is not None:
        attrs.annotation_schema = LLMObsAnnotationSchema(label_schemas=labels)
    return parsed(typed.create_llm_obs_annotation_queue(LLMObsAnnotationQueueRequest(
        data=LLMObsAnnotationQueueDataRequest(attributes=attrs, type=LLMObsAnnotationQueueType.QUEUES))))


def put_schema(typed, queue_id: str, labels: list[LLMObsLabelSchema]):
    return parsed(typed.update_llm_obs_annotation_queue_label_schema(
        queue_id, LLMObsAnnotationQueueLabelSchemaUpdateRequest(data=LLMObsAnnotationQueueLabelSchemaUpdateData(
            attributes=LLMObsAnnotationQueueLabelSchemaUpdateAttributes(
                annotation_schema=LLMObsAnnotationSchema(label_schemas=labels)),
            type=LLMObsAnnotationQueueType.QUEUES))))


def add(typed, queue_id: str, items: list[Any]):
    return parsed(typed.create_llm_obs_annotation_queue_interactions(
        queue_id, LLMObsAnnotationQueueInteractionsRequest(data=LLMObsAnnotationQueueInteractionsDataRequest(
            attributes=LLMObsAnnotationQueueInteractionsDataAttributesRequest(interactions=items),
            type=LLMObsAnnotationQueueInteractionsType.INTERACTIONS)))).data.attributes.interactions


def trace(content_id: str, kind: LLMObsTraceInteractionType = LLMObsTraceInteractionType.TRACE):
    return LLMObsTraceInteractionItem(content_id=content_id, type=kind)


def blocks(*items: LLMObsContentBlock) -> LLMObsDisplayBlockInteractionItem:
    return LLMObsDisplayBlockInteractionItem(display_block=list(items),
                                             type=LLMObsDisplayBlockInteractionType.DISPLAY_BLOCK)


def delete_interactions(typed, queue_id: str, ids: list[str]) -> None:
    typed.delete_llm_obs_annotation_queue_interactions(queue_id, LLMObsDeleteAnnotationQueueInteractionsRequest(
        data=LLMObsDeleteAnnotationQueueInteractionsDataRequest(
            attributes=LLMObsDeleteAnnotationQueueInteractionsDataAttributesRequest(interaction_ids=ids),
            type=LLMObsAnnotationQueueInteractionsType.INTERACTIONS)))


def values(**by_label_id: Any) -> list[LLMObsAnnotationLabelValue]:
    return [LLMObsAnnotationLabelValue(label_schema_id=k, value=v) for k, v in by_label_id.items()]


def upsert(typed, queue_id: str, items: list[tuple[str, list[LLMObsAnnotationLabelValue]]]):
    return parsed(typed.upsert_llm_obs_annotations(queue_id, LLMObsAnnotationsRequest(data=LLMObsAnnotationsDataRequest(
        attributes=LLMObsAnnotationsDataAttributesRequest(annotations=[
            LLMObsUpsertAnnotationItem(interaction_id=iid, label_values=lv) for iid, lv in items]),
        type=LLMObsAnnotationsType.ANNOTATIONS)))).data.attributes


def delete_annotations(typed, queue_id: str, ids: list[str]):
    return parsed(typed.delete_llm_obs_annotations(queue_id, LLMObsDeleteAnnotationsRequest(
        data=LLMObsDeleteAnnotationsDataRequest(
            attributes=LLMObsDeleteAnnotationsDataAttributesRequest(annotation_ids=ids),
            type=LLMObsAnnotationsType.ANNOTATIONS))))


def annotated(typed, queue_id: str) -> list[Any]:
    return parsed(typed.get_llm_obs_annotated_interactions(queue_id)).data.attributes.annotated_interactions


def ids_by_name(queue) -> dict[str, str]:
    return {lab.name: lab.id for lab in queue.data.attributes.annotation_schema.label_schemas}


def error_of(exc: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    body = exc.value.body
    assert isinstance(body, dict), body
    return body["errors"][0]


@pytest.fixture
def scored(typed):
    """A queue with the standard labels and two trace interactions."""
    queue = create_queue(typed, labels=standard_labels())
    qid = queue.data.id
    items = add(typed, qid, [trace(unique("trace")), trace(unique("trace"))])
    return qid, ids_by_name(queue), [i.id for i in items]
