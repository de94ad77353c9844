"""The queue owner's gold values: one authoritative annotation per interaction, apart from the reviewers'.

Kept in a table of its own rather than as one more row of `annotations`, so that the Datadog routes,
which list every reviewer's annotation, answer exactly as before, and an owner who also reviewed an item
keeps both their review and their ruling. Values are stored as annotations store them (keyed by label id).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kennel.annotations.models import Annotation
from kennel.db.base import Base, JSONType, UTCDateTime, new_id, utcnow


class Adjudication(Base):
    __tablename__ = "annotation_adjudications"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    queue_pk: Mapped[int] = mapped_column(ForeignKey("annotation_queues.pk", ondelete="CASCADE"), index=True)
    # One ruling per interaction: ruling again replaces it.
    interaction_pk: Mapped[int] = mapped_column(ForeignKey("annotation_interactions.pk", ondelete="CASCADE"),
                                                unique=True)
    label_values: Mapped[dict[str, Any]] = mapped_column(JSONType)
    author_key_id: Mapped[str] = mapped_column(String(36))
    adjudicated_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# A queue's annotations in item order, for the owner's reads that walk the queue item by item (the
# disagreements page, the export) without sorting the whole queue.
Index("ix_annotations_queue_interaction", Annotation.queue_pk, Annotation.interaction_pk, Annotation.pk)
