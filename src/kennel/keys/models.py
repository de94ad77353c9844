from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from kennel.db.base import Base, UTCDateTime, new_id, utcnow


class ApiKey(Base):
    """A Datadog-style key pair. Only SHA-256 digests are stored; the plain keys are shown once."""

    __tablename__ = "api_keys"

    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_last4: Mapped[str] = mapped_column(String(4))
    app_key_last4: Mapped[str] = mapped_column(String(4))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The person the pair acts as. Pairs made before people existed belong to no one and act as admins.
    user_pk: Mapped[int | None] = mapped_column(ForeignKey("users.pk", ondelete="CASCADE"), nullable=True,
                                                index=True)
