"""Key management. Keys are 128/160 random bits, so a plain SHA-256 digest is a safe verifier:
there is nothing to brute-force, and lookups stay a single indexed equality match per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import NotFound
from kennel.keys.models import ApiKey


@dataclass(frozen=True)
class Actor:
    """Who made a request: the key pair's id and name (shown as created_by / lock holder)."""

    key_id: str
    name: str


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    api_key: str
    app_key: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str) -> NewKey:
    api_key = secrets.token_hex(16)  # 32 hex chars, like a Datadog API key
    app_key = secrets.token_hex(20)  # 40 hex chars, like a Datadog application key
    row = ApiKey(
        name=name,
        api_key_hash=digest(api_key),
        app_key_hash=digest(app_key),
        api_key_last4=api_key[-4:],
        app_key_last4=app_key[-4:],
    )
    session.add(row)
    session.flush()
    return NewKey(id=row.id, name=name, api_key=api_key, app_key=app_key)


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.pk)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_key(session: Session, *, key: str) -> ApiKey:
    """Revoke by key id, by name, or by the plain API key itself."""
    row = session.scalars(
        select(ApiKey).where(
            ApiKey.revoked_at.is_(None),
            or_(ApiKey.id == key, ApiKey.name == key, ApiKey.api_key_hash == digest(key)),
        )
    ).first()
    if row is None:
        raise NotFound(f"no active key matches {key!r} (give a key id, a name or the API key)")
    session.execute(update(ApiKey).where(ApiKey.pk == row.pk).values(revoked_at=utcnow()))
    session.flush()
    return row


def authenticate(session: Session, *, api_key: str | None, app_key: str | None,
                 require_app_key: bool) -> Actor | None:
    """Return the actor for these keys, or None when they do not authorise the request."""
    if not api_key:
        return None
    row = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.app_key_hash).where(
            ApiKey.api_key_hash == digest(api_key), ApiKey.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    if require_app_key and (not app_key or not secrets.compare_digest(row.app_key_hash, digest(app_key))):
        return None
    return Actor(key_id=row.id, name=row.name)
