"""Wire models of Kennel's own people API (/api/kennel/v1/users and key pairs)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class UserAttributesIn(BaseModel):
    username: str = Field(min_length=1, max_length=100)
    email: str | None = Field(default=None, max_length=320)
    role: Literal["admin", "member", "annotator"] = "member"
    password: str = Field(min_length=1, max_length=1000)


class UserDataIn(BaseModel):
    type: Literal["users"]
    attributes: UserAttributesIn


class UserRequest(BaseModel):
    data: UserDataIn


class UserUpdateAttributesIn(BaseModel):
    role: Literal["admin", "member", "annotator"] | None = None
    disabled: bool | None = None


class UserUpdateDataIn(BaseModel):
    type: Literal["users"]
    attributes: UserUpdateAttributesIn


class UserUpdateRequest(BaseModel):
    data: UserUpdateDataIn


class KeyAttributesIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class KeyDataIn(BaseModel):
    type: Literal["key_pairs"]
    attributes: KeyAttributesIn


class KeyRequest(BaseModel):
    data: KeyDataIn
