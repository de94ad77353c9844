"""People and key pairs as wire dicts. A key pair's secrets appear once, in the answer that made it."""

from __future__ import annotations

from typing import Any

from kennel.jsonapi import iso
from kennel.keys.models import ApiKey
from kennel.keys.service import NewKey
from kennel.people.models import User


def user_resource(u: User) -> dict[str, Any]:
    return {"id": u.id, "type": "users",
            "attributes": {"username": u.username, "email": u.email, "role": u.role, "created_at": iso(u.created_at),
                           "disabled_at": iso(u.disabled_at) if u.disabled_at else None}}


def key_resource(k: ApiKey, owner: User | None) -> dict[str, Any]:
    return {"id": k.id, "type": "key_pairs",
            "attributes": {"name": k.name, "api_key_last4": k.api_key_last4, "app_key_last4": k.app_key_last4,
                           "created_at": iso(k.created_at),
                           "revoked_at": iso(k.revoked_at) if k.revoked_at else None,
                           "owner": {"id": owner.id, "username": owner.username} if owner else None}}


def new_key_resource(k: NewKey, owner: User) -> dict[str, Any]:
    return {"id": k.id, "type": "key_pairs",
            "attributes": {"name": k.name, "api_key": k.api_key, "app_key": k.app_key,
                           "owner": {"id": owner.id, "username": owner.username}}}
