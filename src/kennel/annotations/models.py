"""Annotation queues: a queue holds interactions (traces, sessions, display blocks); reviewers annotate them.

A queue's label schema lives on the queue as one JSON list: it is always read and replaced whole,
and annotations keep their values keyed by label id, so a schema change never rewrites annotations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, JSONType, UTCDateTime, new_id, utcnow


class AnnotationQueue(Base):
    __tablename__ = "annotation_queues"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    project_pk: Mapped[int] = mapped_column(ForeignKey("projects.pk", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    description: Mapped[str] = mapped_column(Text, default="")
    label_schemas: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    reviewer_emails: Mapped[list[str]] = mapped_column(JSONType, default=list)
    restrict_to_assignees: Mapped[bool] = mapped_column(Boolean, default=False)
    restrict_to_reviewers: Mapped[bool] = mapped_column(Boolean, default=False)
    # Key names as the wire shows them; the owner's key id too, since names are only labels.
    created_by: Mapped[str] = mapped_column(String(200))
    modified_by: Mapped[str] = mapped_column(String(200))
    owned_by: Mapped[str] = mapped_column(String(200))
    owner_key_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnnotationInteraction(Base):
    __tablename__ = "annotation_interactions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    # Indexed alone too: a queue read walks it in pk order without sorting.
    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    content_id: Mapped[str] = mapped_column(String(255))
    # The item's number in its queue, from 1, in the order items were added; kept without gaps (a delete
    # renumbers the items after it), so that item N is one index lookup.
    position: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    display_block: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        # The same content is in a queue at most once; adding it again finds this row.
        UniqueConstraint("queue_pk", "type", "content_id", name="uq_annotation_interactions_content"),
        # Cross-queue lookup by content id.
        Index("ix_annotation_interactions_content_id", "content_id"),
        Index("ix_annotation_interactions_queue_position", "queue_pk", "position"),
    )


class Annotation(Base):
    __tablename__ = "annotations"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    # Denormalised queue key: deletes and reads by queue need no join through interactions.
    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"), index=True)
    interaction_pk: Mapped[int] = mapped_column(ForeignKey("annotation_interactions.pk", ondelete="CASCADE"))
    # One annotation per key and interaction: a second upsert by the same key updates it.
    author_key_id: Mapped[str] = mapped_column(String(36))
    created_by: Mapped[str] = mapped_column(String(200))
    modified_by: Mapped[str] = mapped_column(String(200))
    label_values: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("interaction_pk", "author_key_id", name="uq_annotations_interaction_author"),
        # One reviewer's annotations in a queue (their progress), without reading everyone's.
        Index("ix_annotations_queue_author", "queue_pk", "author_key_id"),
    )
