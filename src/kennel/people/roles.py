"""Roles and what each may do, for the API and the app alike.

Every route needs one permission, decided here from its path and method so that the whole policy can
be read in one place: reads need `read`, changes need `write`, except in annotation queues, where
reading a queue and writing one's own annotations need only `review`.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    READ = "read"          # projects, datasets, experiments, spans
    WRITE = "write"        # create, change and delete those, and queues and their interactions
    REVIEW = "review"      # see annotation queues, their interactions and traces; annotate
    PEOPLE = "people"      # users and everyone's key pairs
    ACCOUNT = "account"    # one's own account and key pairs (everyone has it; others' need `people`)


ROLES: dict[str, frozenset[Permission]] = {
    "admin": frozenset(Permission),
    "member": frozenset({Permission.READ, Permission.WRITE, Permission.REVIEW, Permission.ACCOUNT}),
    "annotator": frozenset({Permission.REVIEW, Permission.ACCOUNT}),
}

# The queue owner's routes (agreement, adjudications, export, hand-off to a dataset): members and admins.
OWNER_QUEUE_PREFIX = "/api/kennel/v1/annotation-queues/{queue_id}"
OWNER_QUEUE_PATHS = ("/agreement", "/adjudications", "/export", "/to-dataset")


def permission_for(path: str, method: str) -> Permission:
    """The permission a request needs, from its route template and method. (The search for annotations
    across queues, /annotated-interactions outside a queue, needs `read`: it would show restricted queues.)"""
    if path.startswith("/api/kennel/v1/users/{user_id}/keys"):
        # Anyone may manage their own key pairs; the service asks for `people` when they are someone else's.
        return Permission.ACCOUNT
    if path.startswith(("/api/kennel/v1/users", "/api/kennel/v1/keys")):
        return Permission.PEOPLE
    if path.startswith(OWNER_QUEUE_PREFIX) and path[len(OWNER_QUEUE_PREFIX):].startswith(OWNER_QUEUE_PATHS):
        return Permission.READ if method in ("GET", "HEAD") else Permission.WRITE
    if path.startswith("/api/kennel/v1/annotation-queues/"):
        # The review API: reviewing needs `review`; the owner's views need `read`, the settings `write`.
        if path.endswith("/review-settings"):
            return Permission.READ if method == "GET" else Permission.WRITE
        if path.endswith(("/items", "/progress")) and method == "GET":
            return Permission.READ
        return Permission.REVIEW
    if path.startswith("/api/kennel/v1/datasets/{dataset_id}/imports"):
        # An import's file, progress and preview are its sender's business: members and admins.
        return Permission.WRITE
    if "/annotation-queues" in path:
        if method == "GET" or path.endswith(("/annotations", "/annotations/delete")):
            return Permission.REVIEW
        return Permission.WRITE
    return Permission.READ if method in ("GET", "HEAD") else Permission.WRITE


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    return role
