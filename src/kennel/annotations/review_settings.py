"""A queue's review settings (assignment, N reviewers per item, blind review, leases): what the reviewer's
screen enforces, and what the owner's tools read (e.g. N, for "complete")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from kennel.annotations.review_models import (
    ASSIGNMENTS,
    DEFAULT_LEASE_SECONDS,
    ReviewSettings,
)
from kennel.annotations.service import get_queue
from kennel.db.base import utcnow
from kennel.errors import Invalid

MAX_LEASE_SECONDS = 3600
MAX_REVIEWERS_PER_ITEM = 100


@dataclass(frozen=True)
class Settings:
    assignment: str = "open"
    reviewers_per_item: int | None = None
    blind_setting: bool | None = None
    lease_seconds: int = DEFAULT_LEASE_SECONDS

    @property
    def blind(self) -> bool:
        if self.blind_setting is not None:
            return self.blind_setting
        return (self.reviewers_per_item or 0) > 1

    def as_dict(self) -> dict[str, Any]:
        return {"assignment": self.assignment, "reviewers_per_item": self.reviewers_per_item,
                "blind_review": self.blind, "blind_review_setting": self.blind_setting,
                "lease_seconds": self.lease_seconds}


def settings_of(session: Session, queue_pk: int) -> Settings:
    row = session.get(ReviewSettings, queue_pk)
    if row is None:
        return Settings()
    return Settings(row.assignment, row.reviewers_per_item, row.blind, row.lease_seconds)


def update_settings(session: Session, *, queue_id: str, changes: dict[str, Any]) -> Settings:
    """Apply the given fields (absent ones keep their value; `blind_review: null` returns to the default)."""
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    current = settings_of(session, queue.pk)
    values: dict[str, Any] = {"assignment": current.assignment, "reviewers_per_item": current.reviewers_per_item,
                              "blind": current.blind_setting, "lease_seconds": current.lease_seconds}
    pointer = "/data/attributes"
    if "assignment" in changes:
        if changes["assignment"] not in ASSIGNMENTS:
            raise Invalid(f"assignment must be one of {', '.join(ASSIGNMENTS)}, got {changes['assignment']!r}",
                          pointer=f"{pointer}/assignment")
        values["assignment"] = changes["assignment"]
    if "reviewers_per_item" in changes:
        n = changes["reviewers_per_item"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REVIEWERS_PER_ITEM):
            raise Invalid(f"reviewers_per_item must be an integer from 1 to {MAX_REVIEWERS_PER_ITEM}, or null "
                          f"(every reviewer reviews every item); got {n!r}", pointer=f"{pointer}/reviewers_per_item")
        values["reviewers_per_item"] = n
    if "blind_review" in changes:
        blind = changes["blind_review"]
        if blind is not None and not isinstance(blind, bool):
            raise Invalid(f"blind_review must be true, false or null (the default), got {blind!r}",
                          pointer=f"{pointer}/blind_review")
        values["blind"] = blind
    if "lease_seconds" in changes:
        lease = changes["lease_seconds"]
        if isinstance(lease, bool) or not isinstance(lease, int) or not 1 <= lease <= MAX_LEASE_SECONDS:
            raise Invalid(f"lease_seconds must be an integer from 1 to {MAX_LEASE_SECONDS}, got {lease!r}",
                          pointer=f"{pointer}/lease_seconds")
        values["lease_seconds"] = lease
    if values["assignment"] == "assigned" and not queue.reviewer_emails:
        raise Invalid("assignment 'assigned' needs the queue's reviewer_emails to name its reviewers; the queue "
                      "has none", pointer=f"{pointer}/assignment")
    row = session.get(ReviewSettings, queue.pk)
    if row is None:
        row = ReviewSettings(queue_pk=queue.pk)
        session.add(row)
    row.assignment = values["assignment"]
    row.reviewers_per_item = values["reviewers_per_item"]
    row.blind = values["blind"]
    row.lease_seconds = values["lease_seconds"]
    row.modified_at = utcnow()
    session.flush()
    return settings_of(session, queue.pk)
