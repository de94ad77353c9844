"""The one rule for id lists in request bodies, shared by every delete and bulk route."""

from __future__ import annotations

from collections.abc import Sequence

from kennel.errors import Invalid


def require_unique_ids(ids: Sequence[str], *, pointer: str, what: str) -> None:
    """An id list must be non-empty and name each id once; otherwise the request is a 400."""
    if not ids:
        raise Invalid(f"{pointer.rsplit('/', 1)[-1]} must contain at least one {what} id", pointer=pointer)
    seen: set[str] = set()
    for index, value in enumerate(ids):
        if value in seen:
            raise Invalid(f"{what} id {value!r} appears more than once in {pointer.rsplit('/', 1)[-1]}",
                          pointer=f"{pointer}/{index}")
        seen.add(value)
