"""Key management. Keys are 128/160 random bits, so a plain SHA-256 digest is a safe verifier:
there is nothing to brute-force, and lookups stay a single indexed equality match per request."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import Conflict, Invalid, NotFound
from kennel.keys.models import ApiKey
from kennel.people.models import User
from kennel.people.roles import ROLES, Permission


@dataclass(frozen=True)
class Actor:
    """Who made a request. `id` and `name` are the person's when the key pair (or browser session)
    belongs to a user, so alice's keys and alice in the app are one author; a key pair made before
    people existed is its own author and acts as an admin."""

    id: str
    name: str
    role: str = "admin"
    email: str | None = None
    user_pk: int | None = None
    key_id: str | None = None

    def may(self, permission: Permission) -> bool:
        return permission in ROLES.get(self.role, frozenset())


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    api_key: str
    app_key: str


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str, user_pk: int | None = None) -> NewKey:
    api_key = secrets.token_hex(16)  # 32 hex chars, like a Datadog API key
    app_key = secrets.token_hex(20)  # 40 hex chars, like a Datadog application key
    row = ApiKey(
        name=name,
        api_key_hash=digest(api_key),
        app_key_hash=digest(app_key),
        api_key_last4=api_key[-4:],
        app_key_last4=app_key[-4:],
        user_pk=user_pk,
    )
    session.add(row)
    session.flush()
    return NewKey(id=row.id, name=name, api_key=api_key, app_key=app_key)


def list_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    stmt = select(ApiKey).order_by(ApiKey.pk)
    if not include_revoked:
        stmt = stmt.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(stmt))


def revoke_keys(session: Session, *, key: str, all_named: bool = False) -> list[ApiKey]:
    """Revoke the active pair with this key id or plain API key, or the one active pair with this name.

    A name several active pairs share revokes them all with `all_named`, and nothing without it
    (Conflict listing them in `meta["matches"]`): revoking one of them would tell the caller that
    the name's access is gone while the others still work.
    """
    active = ApiKey.revoked_at.is_(None)
    rows = list(session.scalars(select(ApiKey).where(active, or_(ApiKey.id == key,
                                                                 ApiKey.api_key_hash == digest(key)))))
    if rows and all_named:
        raise Invalid(f"--all revokes every pair with a name; {key!r} is a key id or an API key, "
                      f"which names one pair (revoke it without --all)")
    if not rows:
        rows = list(session.scalars(select(ApiKey).where(active, ApiKey.name == key).order_by(ApiKey.pk)))
    if not rows:
        raise NotFound(f"no active key matches {key!r} (give a key id, a name or the API key)")
    if len(rows) > 1 and not all_named:
        raise Conflict(
            f"{len(rows)} active key pairs are named {key!r}, so nothing was revoked; revoke one by its id, "
            f"or all of them with --all",
            meta={"matches": [{"id": r.id, "api_key_last4": r.api_key_last4, "created_at": r.created_at}
                              for r in rows]})
    session.execute(update(ApiKey).where(ApiKey.pk.in_([r.pk for r in rows])).values(revoked_at=utcnow()))
    session.flush()
    return rows


def authenticate(session: Session, *, api_key: str | None, app_key: str | None,
                 require_app_key: bool) -> Actor | None:
    """Return the actor for these keys, or None when they do not authorise the request (a disabled
    user's key pairs authorise nothing)."""
    if not api_key:
        return None
    row = session.execute(
        select(ApiKey.id, ApiKey.name, ApiKey.app_key_hash, User.pk, User.id.label("user_id"), User.username,
               User.email, User.role, User.disabled_at)
        .outerjoin(User, User.pk == ApiKey.user_pk)
        .where(ApiKey.api_key_hash == digest(api_key), ApiKey.revoked_at.is_(None))
    ).first()
    if row is None:
        return None
    if require_app_key and (not app_key or not secrets.compare_digest(row.app_key_hash, digest(app_key))):
        return None
    if row.pk is None:
        return Actor(id=row.id, name=row.name, key_id=row.id)
    if row.disabled_at is not None:
        return None
    return Actor(id=row.user_id, name=row.username, role=row.role, email=row.email, user_pk=row.pk, key_id=row.id)
