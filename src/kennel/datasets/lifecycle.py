"""Dataset lifecycle: restore a version, clone a dataset, and the draft lock.

Restore and clone are a couple of set-based statements each (see shared/design/versioned-records.md):
their cost does not depend on a round trip per record, only on how many rows the database copies.
"""

from __future__ import annotations

from sqlalchemy import and_, literal, select
from sqlalchemy.orm import Session

from kennel.datasets.models import Dataset, DatasetRecord
from kennel.datasets.service import create_or_get_dataset, ensure_writable, get_dataset, record_version
from kennel.datasets.store import store_for, visible_at
from kennel.db.base import utcnow
from kennel.errors import Conflict, Invalid
from kennel.keys.service import Actor
from kennel.projects.models import Project

R = DatasetRecord.__table__.c


def restore_version(session: Session, *, project_id: str, dataset_id: str, version: int, actor: Actor) -> Dataset:
    """Make the content of `version` the content of a new version; older versions stay readable.

    Only rows that differ between `version` and now are written: open rows opened after `version`
    are closed, and the revisions visible at `version` that have been closed since are copied
    open at the new version (every field kept). Open rows opened at or before `version` are already
    what that version shows, so they stay as they are.
    """
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    ensure_writable(dataset, actor)
    if version < 0 or version > dataset.current_version:
        raise Invalid(f"invalid version: version is greater than the current version or negative "
                      f"(dataset_version {version}, current version {dataset.current_version})",
                      pointer="/data/attributes/dataset_version")
    store = store_for(session)
    new = dataset.current_version + 1
    # Close first: a record changed since `version` has an open row with the same record id, and only
    # one open row per record id may exist (unique partial index).
    store.close_opened_after(dataset.pk, version, at=new)
    restored = store.copy_revisions(
        and_(R.dataset_pk == dataset.pk, visible_at(version), R.valid_to.is_not(None)),
        {"dataset_pk": R.dataset_pk, "valid_from": literal(new)}).subquery()
    if dataset.content_indexed:
        store.index_hashes_from(select(restored.c.content_hash, restored.c.dataset_pk, restored.c.record_id))
    # The restorer is the version's author, even of a restore that changes nothing.
    record_version(session, dataset, version=new, author_id=actor.id, tally=store.tally(dataset.pk, new),
                   now=utcnow())
    return dataset


def clone_dataset(session: Session, *, project_id: str, dataset_id: str, name: str, description: str | None,
                  description_given: bool, actor: Actor) -> Dataset:
    """A new dataset in the same project holding the source's current records, copied in one statement.

    Every field is kept (record ids, creation order, authorship) but canonical ids, which are new, so
    the clone's records are its own. The clone starts at version 1 holding the records (version 0 is
    empty, as for every dataset).
    """
    # Taken for writing like any writer's: the copy is one consistent state, with pending closings settled.
    src = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    taken = session.scalar(select(Dataset.id).where(Dataset.project_pk == src.project_pk, Dataset.name == name,
                                                    Dataset.deleted_at.is_(None)))
    if taken is not None:
        raise Conflict(f"a dataset named {name!r} already exists in this project ({taken})",
                       pointer="/data/attributes/name")
    clone, created = create_or_get_dataset(
        session, project_id=project_id, name=name,
        description=description if description_given else src.description, metadata=src.metadata_, actor=actor)
    if not created:  # another request took the name between the check and the insert
        raise Conflict(f"a dataset named {name!r} already exists in this project ({clone.id})",
                       pointer="/data/attributes/name")
    store = store_for(session)
    # rowcount of INSERT ... SELECT is not reliable across drivers; ask first.
    if store.has_open_records(src.pk):
        store.copy_revisions(and_(R.dataset_pk == src.pk, R.valid_to.is_(None)),
                             {"dataset_pk": literal(clone.pk), "canonical_id": store.new_canonical_ids(),
                              "valid_from": literal(1)})
        record_version(session, clone, version=1, author_id=actor.id, tally=store.tally(clone.pk, 1), now=utcnow())
    clone.next_seq = src.next_seq
    session.flush()
    return clone


# Draft lock -------------------------------------------------------------------------------------

def get_draft_state(session: Session, *, project_id: str, dataset_id: str) -> Dataset:
    return get_dataset(session, dataset_id=dataset_id, project_id=project_id)


def lock_draft(session: Session, *, project_id: str, dataset_id: str, actor: Actor) -> Dataset:
    """Take the draft lock for `actor`; taking a lock one already holds keeps its start time."""
    # Shares the row lock a project's delete or rename holds while it checks for datasets locked by
    # others: a lock taken meanwhile would be on a dataset about to vanish or move.
    session.execute(select(Project.pk).where(Project.id == project_id).with_for_update(read=True))
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    ensure_writable(dataset, actor)
    if dataset.draft_holder_id is None:
        dataset.draft_holder_id = actor.id
        dataset.draft_holder_name = actor.name
        dataset.drafting_since = utcnow()
        session.flush()
    return dataset


def unlock_draft(session: Session, *, project_id: str, dataset_id: str, actor: Actor) -> Dataset:
    """Release the lock. Only its holder may; unlocking an unlocked dataset is a no-op."""
    dataset = get_dataset(session, dataset_id=dataset_id, project_id=project_id, for_update=True)
    if dataset.draft_holder_id is None:
        return dataset
    ensure_writable(dataset, actor)
    dataset.draft_holder_id = None
    dataset.draft_holder_name = None
    dataset.drafting_since = None
    session.flush()
    return dataset
