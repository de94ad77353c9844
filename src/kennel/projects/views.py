"""Rows to wire dicts. Every field the typed client marks required is present (null if empty)."""

from __future__ import annotations

from typing import Any

from kennel.jsonapi import iso
from kennel.projects.models import Project


def project_resource(p: Project) -> dict[str, Any]:
    return {
        "id": p.id,
        "type": "projects",
        "attributes": {
            "name": p.name,
            "description": p.description,
            "author": {"id": p.author_id},
            "created_at": iso(p.created_at),
            "updated_at": iso(p.updated_at),
        },
    }
