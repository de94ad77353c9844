"""People and key pairs as an admin (or the person themselves) manages them, from the API or the app.

Whose key pairs a request may touch is decided here, once, for both: one's own with any role, anyone
else's (and the pairs made before people existed, which belong to no one) only with `people`.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kennel.db.base import utcnow
from kennel.errors import Forbidden, Invalid, NotFound
from kennel.keys.models import ApiKey
from kennel.keys.service import Actor, NewKey, create_key
from kennel.people.models import User
from kennel.people.roles import Permission
from kennel.people.service import get_user, keys_of

ME = "me"
MAX_KEY_NAME = 200


def _require_people(actor: Actor, doing: str) -> None:
    if not actor.may(Permission.PEOPLE):
        raise Forbidden(f"{actor.name} has the {actor.role} role, which lacks the `people` permission "
                        f"{doing} needs; nothing was changed")


def key_owner(session: Session, *, actor: Actor, user_id: str) -> User:
    """The person whose key pairs `user_id` ("me", an id, a user name or an email) names, if the actor may
    manage them."""
    if user_id == ME:
        if actor.user_pk is None:
            raise NotFound("this key pair belongs to no person, so it has no `me`; name a user instead")
        user = session.get(User, actor.user_pk)
        if user is None:  # pragma: no cover - a key's user is deleted with it
            raise NotFound("your account no longer exists")
        return user
    user = get_user(session, who=user_id)
    if user.pk != actor.user_pk:
        _require_people(actor, "managing another person's key pairs")
    return user


def list_user_keys(session: Session, *, actor: Actor, user_id: str) -> tuple[User, list[ApiKey]]:
    user = key_owner(session, actor=actor, user_id=user_id)
    return user, keys_of(session, user_pk=user.pk)


def create_user_key(session: Session, *, actor: Actor, user_id: str, name: str) -> tuple[User, NewKey]:
    user = key_owner(session, actor=actor, user_id=user_id)
    name = name.strip()
    if not name or len(name) > MAX_KEY_NAME:
        raise Invalid(f"name must be 1 to {MAX_KEY_NAME} characters", pointer="/data/attributes/name")
    if user.disabled_at is not None:
        raise Invalid(f"{user.username} is disabled; a key pair of theirs would authorise nothing")
    return user, create_key(session, name=name, user_pk=user.pk)


def _revoke(session: Session, row: ApiKey | None, whose: str) -> ApiKey:
    if row is None or row.revoked_at is not None:
        raise NotFound(f"no active key pair with this id {whose}")
    session.execute(update(ApiKey).where(ApiKey.pk == row.pk).values(revoked_at=utcnow()))
    session.flush()
    session.refresh(row)
    return row


def revoke_user_key(session: Session, *, actor: Actor, user_id: str, key_id: str) -> ApiKey:
    user = key_owner(session, actor=actor, user_id=user_id)
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_pk == user.pk)).first()
    return _revoke(session, row, f"belongs to {user.username}")


def unowned_keys(session: Session, *, actor: Actor) -> list[ApiKey]:
    """Pairs made before people existed (or by `kennel keys create` without --user): they act as admins."""
    _require_people(actor, "seeing key pairs that belong to no one")
    return keys_of(session, user_pk=None)


def revoke_unowned_key(session: Session, *, actor: Actor, key_id: str) -> ApiKey:
    _require_people(actor, "revoking a key pair that belongs to no one")
    row = session.scalars(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_pk.is_(None))).first()
    return _revoke(session, row, "that belongs to no one")
