"""Reviewing a queue: its settings, each reviewer's state on each item, and the undo log.

Annotations stay where the Datadog API keeps them (annotations.models.Annotation, one per author and
interaction): "done by me" always means "my annotation exists", whichever route wrote it. These tables hold
only what the review adds: who may take an item and for how long (leases), skips, flags, drafts, the time
spent, and the actions a reviewer may undo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, JSONType, UTCDateTime, utcnow

ASSIGNMENTS = ("open", "assigned")
DEFAULT_LEASE_SECONDS = 300


class ReviewSettings(Base):
    """A queue's review settings; a queue without a row has the defaults (open, every reviewer reviews
    every item, no blind review)."""

    __tablename__ = "review_settings"

    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"), primary_key=True)
    # "open": anyone who may review the queue; "assigned": only the queue's reviewer_emails.
    assignment: Mapped[str] = mapped_column(String(16), default="open")
    # N: an item leaves everyone's queue once it has N annotations. None: each reviewer reviews every item.
    reviewers_per_item: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # None: the default, on when reviewers_per_item > 1.
    blind: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    lease_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_LEASE_SECONDS)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReviewState(Base):
    """One reviewer's state on one item, made when the item is first handed to them."""

    __tablename__ = "review_states"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"))
    interaction_pk: Mapped[int] = mapped_column(ForeignKey("annotation_interactions.pk", ondelete="CASCADE"))
    # The author id annotations carry (a person's id, or a key's for a key pair of no one).
    reviewer_id: Mapped[str] = mapped_column(String(36))
    reviewer_name: Mapped[str] = mapped_column(String(200))
    # The item is held for this reviewer until then: with N reviewers per item, a held item counts as
    # taken, so that no more reviewers are handed it than it needs.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the reviewer was handed the item, for the time per item.
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Skipped items go to the end of the reviewer's queue, in the order skipped.
    skipped_seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    # The label values as the reviewer left them, and the label schema they were typed against, so that a
    # changed schema can be named.
    draft: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    draft_schema: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType, nullable=True)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("interaction_pk", "reviewer_id", name="uq_review_states_interaction_reviewer"),
        # A reviewer's items in a queue: skipped ones in skip order, held ones, progress.
        Index("ix_review_states_queue_reviewer", "queue_pk", "reviewer_id", "skipped_seq"),
    )


class ReviewAction(Base):
    """A submit or skip a reviewer may undo: what it replaced, so that undo puts it back."""

    __tablename__ = "review_actions"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"))
    interaction_pk: Mapped[int] = mapped_column(ForeignKey("annotation_interactions.pk", ondelete="CASCADE"))
    reviewer_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(16))  # "submit" or "skip"
    # For a submit, the annotation's label values before it (None: there was none); for a skip, the
    # item's previous skip position.
    before_values: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    before_skip: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    __table_args__ = (Index("ix_review_actions_queue_reviewer", "queue_pk", "reviewer_id", "pk"),)
