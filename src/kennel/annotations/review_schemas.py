"""Request bodies of the review API (/api/kennel/v1/annotation-queues/...). Shapes only: the rules that need
the queue (label values, settings ranges) are checked in review.py, with messages naming the label."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kennel.annotations.schemas import LabelValueIn


class ReviewSettingsIn(BaseModel):
    # Absent fields keep their value; `blind_review: null` returns to the default (on when N > 1).
    assignment: Literal["open", "assigned"] | None = None
    reviewers_per_item: int | None = Field(default=None, description="N: an item leaves every reviewer's queue "
                                           "once it has N annotations; null: every reviewer reviews every item")
    blind_review: bool | None = None
    lease_seconds: int | None = None


class ReviewSettingsData(BaseModel):
    type: Literal["review_settings"]
    attributes: ReviewSettingsIn


class ReviewSettingsRequest(BaseModel):
    data: ReviewSettingsData


class NextIn(BaseModel):
    after_interaction_id: str | None = Field(default=None, description="go on in queue order after this item")


class NextData(BaseModel):
    type: Literal["review_items"]
    attributes: NextIn = NextIn()


class NextRequest(BaseModel):
    data: NextData


class OpenIn(BaseModel):
    interaction_id: str | None = None
    # Bounded to what the position column (a 32-bit integer on PostgreSQL) can hold.
    position: int | None = Field(default=None, ge=1, le=2**31 - 1, description="the item's number in the queue, from 1")
    step: Literal[-1, 0, 1] = Field(default=0, description="from interaction_id, the previous (-1) or next (1) item")


class OpenData(BaseModel):
    type: Literal["review_items"]
    attributes: OpenIn


class OpenRequest(BaseModel):
    data: OpenData


class SubmitIn(BaseModel):
    label_values: list[LabelValueIn]
    schema_version: str | None = Field(default=None, description="the label schema's version the values were "
                                       "chosen against (from the item); a changed schema is a 409")
    next: bool = Field(default=False, description="also hand me my next item")


class SubmitData(BaseModel):
    type: Literal["annotations"]
    attributes: SubmitIn


class SubmitRequest(BaseModel):
    data: SubmitData


class DraftIn(BaseModel):
    # Any subset of the labels, as typed so far; not yet checked against the label rules.
    label_values: list[dict[str, Any]]
    schema_version: str | None = None


class DraftData(BaseModel):
    type: Literal["drafts"]
    attributes: DraftIn


class DraftRequest(BaseModel):
    data: DraftData


class FlagIn(BaseModel):
    flagged: bool


class FlagData(BaseModel):
    type: Literal["flags"]
    attributes: FlagIn


class FlagRequest(BaseModel):
    data: FlagData
