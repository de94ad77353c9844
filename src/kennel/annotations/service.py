"""Queues, label schemas, interactions and annotations: plain functions over one session, set-based.

They flush and never commit (the request's unit of work does); every check runs before the first
write, so a rejected request changes nothing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import DateTime, Text, cast, delete, func, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kennel.annotations.models import Annotation, AnnotationInteraction, AnnotationQueue
from kennel.annotations.schemas import (
    AnnotationSchemaIn,
    QueueAttributesIn,
    QueueUpdateAttributesIn,
    UpsertAnnotationIn,
)
from kennel.annotations.validation import (
    check_annotation,
    check_emails,
    normalize_interactions,
    normalize_label_schemas,
)
from kennel.db.base import new_id, utcnow
from kennel.errors import Forbidden, Invalid, NotFound
from kennel.ids import listing, require_unique_ids
from kennel.keys.service import Actor
from kennel.people.roles import Permission
from kennel.projects.models import Project

ATTRS = "/data/attributes"
MAX_INTERACTIONS_PER_REQUEST = 1000
MAX_IDS_PER_REQUEST = 5000
MAX_ANNOTATIONS_PER_REQUEST = 1000
MAX_CONTENT_IDS = 1000


def dialect_insert(session: Session, table: Any):
    """An INSERT that knows ON CONFLICT on both backends (they spell it the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _queue_select():
    # A queue goes with its project: queues of a deleted project are gone too.
    return (select(AnnotationQueue, Project.id)
            .join(Project, Project.pk == AnnotationQueue.project_pk)
            .where(Project.deleted_at.is_(None)))


def get_queue(session: Session, *, queue_id: str, lock: bool = False) -> tuple[AnnotationQueue, str]:
    """The queue and its project's id, or 404.

    `lock` holds the queue against a concurrent delete while rows that point at it are written
    (FOR SHARE on PostgreSQL; SQLite already serialises writers).
    """
    stmt = _queue_select().where(AnnotationQueue.id == queue_id)
    if lock:
        stmt = stmt.with_for_update(read=True, of=AnnotationQueue)
    row = session.execute(stmt).first()
    if row is None:
        raise NotFound(f"annotation queue {queue_id!r} not found")
    return row[0], row[1]


def may_annotate(queue: AnnotationQueue, actor: Actor) -> bool:
    """A queue restricted to its reviewers takes annotations only from people whose email it lists."""
    if not queue.restrict_to_reviewers:
        return True
    return actor.email is not None and actor.email.lower() in {e.lower() for e in queue.reviewer_emails or []}


def may_see(queue: AnnotationQueue, actor: Actor) -> bool:
    """Whoever may read the project sees every queue; an annotator, the queues they may annotate."""
    return actor.may(Permission.READ) or may_annotate(queue, actor)


def visible_interactions(session: Session, actor: Actor, *, trace_ids: Sequence[str] = (),
                         session_ids: Sequence[str] = ()) -> set[tuple[str, str]]:
    """(kind, id) of these traces and sessions that are interactions of a queue this actor may see; kind
    is "trace" (an experiment trace included) or "session". It is what lets an annotator open a trace."""
    wanted = []
    if trace_ids:
        wanted.append(AnnotationInteraction.type.in_(("trace", "experiment_trace"))
                      & AnnotationInteraction.content_id.in_(trace_ids))
    if session_ids:
        wanted.append((AnnotationInteraction.type == "session") & AnnotationInteraction.content_id.in_(session_ids))
    if not wanted:
        return set()
    stmt = (select(AnnotationInteraction.type, AnnotationInteraction.content_id, AnnotationQueue)
            .join(AnnotationQueue, AnnotationQueue.pk == AnnotationInteraction.queue_pk)
            .join(Project, Project.pk == AnnotationQueue.project_pk)
            .where(Project.deleted_at.is_(None), or_(*wanted)))
    return {("session" if kind == "session" else "trace", content_id)
            for kind, content_id, queue in session.execute(stmt) if may_see(queue, actor)}


def check_visible(session: Session, *, queue_id: str, actor: Actor) -> None:
    """404, as for a queue that does not exist, when this person may not see the queue."""
    if not actor.may(Permission.READ) and not may_see(get_queue(session, queue_id=queue_id)[0], actor):
        raise NotFound(f"annotation queue {queue_id!r} not found")


def _schema(schema: AnnotationSchemaIn, existing: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return normalize_label_schemas(schema.label_schemas, existing,
                                   pointer=f"{ATTRS}/annotation_schema/label_schemas")


def create_queue(session: Session, *, attrs: QueueAttributesIn, actor: Actor) -> tuple[AnnotationQueue, str]:
    project = session.scalars(select(Project).where(Project.id == attrs.project_id,
                                                    Project.deleted_at.is_(None))).first()
    if project is None:
        raise NotFound(f"project {attrs.project_id!r} not found", pointer=f"{ATTRS}/project_id")
    labels = _schema(attrs.annotation_schema, []) if attrs.annotation_schema else []
    emails = check_emails(attrs.reviewer_emails or [], pointer=f"{ATTRS}/reviewer_emails")
    now = utcnow()
    queue = AnnotationQueue(
        project_pk=project.pk, name=attrs.name, description=attrs.description or "", label_schemas=labels,
        reviewer_emails=emails, restrict_to_assignees=bool(attrs.restrict_to_assignees),
        restrict_to_reviewers=bool(attrs.restrict_to_reviewers), created_by=actor.name, modified_by=actor.name,
        owned_by=actor.name, owner_key_id=actor.id, created_at=now, modified_at=now)
    session.add(queue)
    session.flush()
    return queue, project.id


def list_queues(session: Session, *, project_id: str | None, queue_ids: Sequence[str] | None,
                actor: Actor) -> list[tuple[AnnotationQueue, str]]:
    stmt = _queue_select()
    if project_id is not None:
        stmt = stmt.where(Project.id == project_id)
    if queue_ids:
        stmt = stmt.where(AnnotationQueue.id.in_(queue_ids))
    return [(q, pid) for q, pid in session.execute(stmt.order_by(AnnotationQueue.pk.desc())) if may_see(q, actor)]


def update_queue(session: Session, *, queue_id: str, attrs: QueueUpdateAttributesIn,
                 actor: Actor) -> tuple[AnnotationQueue, str]:
    queue, project_id = get_queue(session, queue_id=queue_id)
    # Validate everything before touching the row, so a rejected update changes nothing.
    labels = _schema(attrs.annotation_schema, queue.label_schemas) if attrs.annotation_schema else None
    emails = (check_emails(attrs.reviewer_emails, pointer=f"{ATTRS}/reviewer_emails")
              if attrs.reviewer_emails is not None else None)
    if attrs.name is not None:
        queue.name = attrs.name
    if "description" in attrs.model_fields_set:
        queue.description = attrs.description or ""
    if labels is not None:
        queue.label_schemas = labels
    if emails is not None:
        queue.reviewer_emails = emails
    if attrs.restrict_to_assignees is not None:
        queue.restrict_to_assignees = attrs.restrict_to_assignees
    if attrs.restrict_to_reviewers is not None:
        queue.restrict_to_reviewers = attrs.restrict_to_reviewers
    queue.modified_by = actor.name
    queue.modified_at = utcnow()
    session.flush()
    return queue, project_id


def delete_queue(session: Session, *, queue_id: str) -> None:
    queue, _ = get_queue(session, queue_id=queue_id)
    # Interactions and annotations go through ON DELETE CASCADE.
    session.execute(delete(AnnotationQueue).where(AnnotationQueue.pk == queue.pk))
    session.flush()


def replace_label_schema(session: Session, *, queue_id: str, schema: AnnotationSchemaIn,
                         actor: Actor) -> AnnotationQueue:
    queue, _ = get_queue(session, queue_id=queue_id)
    queue.label_schemas = _schema(schema, queue.label_schemas)
    queue.modified_by = actor.name
    queue.modified_at = utcnow()
    session.flush()
    return queue


# --- interactions -------------------------------------------------------------------------------

_INTERACTION_COLUMNS = (AnnotationInteraction.pk, AnnotationInteraction.id, AnnotationInteraction.type,
                        AnnotationInteraction.content_id, AnnotationInteraction.display_block,
                        AnnotationInteraction.created_at, AnnotationInteraction.modified_at)


def _interactions_by_content(session: Session, queue_pk: int, content_ids: set[str]) -> dict[tuple[str, str], Any]:
    rows = session.execute(select(*_INTERACTION_COLUMNS).where(
        AnnotationInteraction.queue_pk == queue_pk, AnnotationInteraction.content_id.in_(content_ids)))
    return {(r.type, r.content_id): r for r in rows}


def add_interactions(session: Session, *, queue_id: str,
                     items: Sequence[dict[str, Any]]) -> list[tuple[Any, bool]]:
    """Add interactions; content already in the queue comes back as it is, flagged as existing."""
    pointer = f"{ATTRS}/interactions"
    if len(items) > MAX_INTERACTIONS_PER_REQUEST:
        raise Invalid(f"at most {MAX_INTERACTIONS_PER_REQUEST} interactions per request, got {len(items)}",
                      pointer=pointer)
    wanted = normalize_interactions(items, pointer=pointer)
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    content_ids = {w["content_id"] for w in wanted}
    before = _interactions_by_content(session, queue.pk, content_ids)
    now = utcnow()
    new_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for w in wanted:
        key = (w["type"], w["content_id"])
        if key not in before and key not in new_rows:
            new_rows[key] = {"id": new_id(), "queue_pk": queue.pk, "type": w["type"], "content_id": w["content_id"],
                             "display_block": w["display_block"], "created_at": now, "modified_at": now}
    if new_rows:
        # Numbered after the queue's last item (the queue's row is locked, so no other add numbers at once).
        last = session.scalar(select(func.max(AnnotationInteraction.position)).where(
            AnnotationInteraction.queue_pk == queue.pk)) or 0
        for number, row in enumerate(new_rows.values(), start=last + 1):
            row["position"] = number
        # Another process may add the same content meanwhile; its row wins and ours is dropped.
        stmt = dialect_insert(session, AnnotationInteraction.__table__).on_conflict_do_nothing(
            index_elements=["queue_pk", "type", "content_id"])
        session.execute(stmt, list(new_rows.values()))
    after = _interactions_by_content(session, queue.pk, content_ids) if new_rows else before
    out: list[tuple[Any, bool]] = []
    claimed: set[tuple[str, str]] = set()
    for w in wanted:
        key = (w["type"], w["content_id"])
        row = after[key]
        ours = key in new_rows and new_rows[key]["id"] == row.id and key not in claimed
        claimed.add(key)
        out.append((row, not ours))
    session.flush()
    return out


def delete_interactions(session: Session, *, queue_id: str, interaction_ids: list[str]) -> None:
    pointer = f"{ATTRS}/interaction_ids"
    require_unique_ids(interaction_ids, pointer=pointer, what="interaction")
    if len(interaction_ids) > MAX_IDS_PER_REQUEST:
        raise Invalid(f"at most {MAX_IDS_PER_REQUEST} interaction ids per request", pointer=pointer)
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    found = dict(session.execute(select(AnnotationInteraction.id, AnnotationInteraction.pk).where(
        AnnotationInteraction.queue_pk == queue.pk, AnnotationInteraction.id.in_(interaction_ids))).tuples().all())
    missing = [i for i in interaction_ids if i not in found]
    if missing:
        raise NotFound(f"interaction(s) not found in queue {queue_id}: {listing(missing)}; nothing was deleted",
                       pointer=pointer)
    # Their annotations go through ON DELETE CASCADE.
    session.execute(delete(AnnotationInteraction).where(AnnotationInteraction.pk.in_(list(found.values()))))
    renumber(session, queue.pk)
    session.flush()


def renumber(session: Session, queue_pk: int) -> None:
    """Close the gaps deleted items left in the queue's numbering (one statement; only the items after the
    first gap change)."""
    table: Any = AnnotationInteraction.__table__
    numbered = select(table.c.pk, func.row_number().over(order_by=table.c.position).label("n")).where(
        table.c.queue_pk == queue_pk).subquery()
    session.execute(update(table).values(position=numbered.c.n).where(
        table.c.pk == numbered.c.pk, table.c.position != numbered.c.n))


# --- annotations --------------------------------------------------------------------------------


def upsert_annotations(session: Session, *, queue_id: str, items: Sequence[UpsertAnnotationIn],
                       actor: Actor) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Store each valid item as the actor's annotation of its interaction (one per key and interaction).

    Returns the stored annotations and one error per rejected item. A handful of statements whatever
    the batch size: one lookup of the interactions and one INSERT .. ON CONFLICT DO UPDATE .. RETURNING
    for all rows, which keeps the ids of annotations being updated.
    """
    pointer = f"{ATTRS}/annotations"
    if not items:
        raise Invalid("annotations must contain at least one annotation", pointer=pointer)
    if len(items) > MAX_ANNOTATIONS_PER_REQUEST:
        raise Invalid(f"at most {MAX_ANNOTATIONS_PER_REQUEST} annotations per request, got {len(items)}",
                      pointer=pointer)
    queue, _ = get_queue(session, queue_id=queue_id, lock=True)
    if not may_see(queue, actor):
        raise NotFound(f"annotation queue {queue_id!r} not found")
    if not may_annotate(queue, actor):
        raise Forbidden(f"queue {queue_id} takes annotations only from its reviewers (reviewer_emails), and "
                        f"{actor.name} ({actor.email or 'no email'}) is not one of them; nothing was changed")
    labels_by_id = {label["id"]: label for label in queue.label_schemas}
    required = [label for label in queue.label_schemas if label.get("is_required")]
    wanted_ids = {item.interaction_id for item in items}
    # FOR SHARE: an interaction deleted meanwhile would otherwise fail the insert below.
    interaction_pks = dict(session.execute(select(AnnotationInteraction.id, AnnotationInteraction.pk).where(
        AnnotationInteraction.queue_pk == queue.pk, AnnotationInteraction.id.in_(wanted_ids))
        .with_for_update(read=True)).tuples().all())

    errors: list[dict[str, Any]] = []
    accepted: list[tuple[UpsertAnnotationIn, int, dict[str, Any]]] = []
    seen: set[str] = set()
    for item in items:
        pk = interaction_pks.get(item.interaction_id)
        stored: dict[str, Any] | None = None
        problem: str | None
        if pk is None:
            problem = f"interaction {item.interaction_id!r} not found in queue {queue_id}"
        elif item.interaction_id in seen:
            problem = "interaction appears more than once in this batch; send one annotation per interaction"
        else:
            stored, problem = check_annotation(item.label_values, labels_by_id, required)
        if problem:
            errors.append({"interaction_id": item.interaction_id, "error": problem})
            continue
        seen.add(item.interaction_id)
        accepted.append((item, pk, stored))  # type: ignore[arg-type]  # both set when there is no problem
    if not accepted:
        return [], errors

    now = utcnow()
    rows = [{"id": new_id(), "queue_pk": queue.pk, "interaction_pk": pk, "author_key_id": actor.id,
             "created_by": actor.name, "modified_by": actor.name, "label_values": stored,
             "created_at": now, "modified_at": now} for _, pk, stored in accepted]
    table = Annotation.__table__
    stmt = dialect_insert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["interaction_pk", "author_key_id"],
        set_={"label_values": stmt.excluded.label_values, "modified_by": stmt.excluded.modified_by,
              "modified_at": stmt.excluded.modified_at})
    # RETURNING gives the row as it ended up: an update keeps its id and creation, even when another
    # request by the same key created it a moment ago.
    returned = session.execute(stmt.returning(table.c.interaction_pk, table.c.id, table.c.created_by,
                                              table.c.created_at), rows)
    saved = {r.interaction_pk: r for r in returned}
    out = [{"id": saved[pk].id, "interaction_id": item.interaction_id, "label_values": stored,
            "created_by": saved[pk].created_by, "created_at": saved[pk].created_at,
            "modified_by": actor.name, "modified_at": now} for item, pk, stored in accepted]
    session.flush()
    return out, errors


def delete_annotations(session: Session, *, queue_id: str, annotation_ids: list[str],
                       actor: Actor) -> tuple[list[str], list[dict[str, str]]]:
    """Delete what exists in this queue; every other id comes back as an error (the call still succeeds).
    Someone who may only review deletes only their own annotations."""
    pointer = f"{ATTRS}/annotation_ids"
    require_unique_ids(annotation_ids, pointer=pointer, what="annotation")
    if len(annotation_ids) > MAX_IDS_PER_REQUEST:
        raise Invalid(f"at most {MAX_IDS_PER_REQUEST} annotation ids per request", pointer=pointer)
    queue, _ = get_queue(session, queue_id=queue_id)
    if not may_see(queue, actor):
        raise NotFound(f"annotation queue {queue_id!r} not found")
    mine = [] if actor.may(Permission.WRITE) else [Annotation.author_key_id == actor.id]
    found = dict(session.execute(select(Annotation.id, Annotation.pk).where(
        Annotation.queue_pk == queue.pk, Annotation.id.in_(annotation_ids), *mine)).tuples().all())
    if found:
        session.execute(delete(Annotation).where(Annotation.pk.in_(list(found.values()))))
        session.flush()
    deleted = [i for i in annotation_ids if i in found]
    errors = [{"annotation_id": i, "error": f"annotation not found in queue {queue_id}"}
              for i in annotation_ids if i not in found]
    return deleted, errors


# --- reads --------------------------------------------------------------------------------------
# Reads can be large (a whole queue), so they skip the ORM and the per-value conversions: JSON
# columns come back as their stored text and timestamps as plain datetimes, both passed through to
# the response as they are (see views.py).

_I = AnnotationInteraction.__table__.c
_A = Annotation.__table__.c
_READ_INTERACTION = (_I.pk, _I.id, _I.type, _I.content_id, cast(_I.display_block, Text).label("display_block"),
                     type_coerce(_I.created_at, DateTime()).label("created_at"),
                     type_coerce(_I.modified_at, DateTime()).label("modified_at"))
_READ_ANNOTATION = (_A.interaction_pk, _A.id, cast(_A.label_values, Text).label("label_values"), _A.created_by,
                    _A.modified_by, type_coerce(_A.created_at, DateTime()).label("created_at"),
                    type_coerce(_A.modified_at, DateTime()).label("modified_at"))


def _group(result) -> dict[int, list[Any]]:
    """Annotation rows (as tuples) by interaction pk, the first column."""
    grouped: dict[int, list[Any]] = {}
    for row in result.tuples():
        group = grouped.get(row[0])
        if group is None:
            grouped[row[0]] = [row]
        else:
            group.append(row)
    return grouped


def annotated_interactions(session: Session, *, queue_id: str) -> tuple[Sequence[Any], dict[int, list[Any]]]:
    """Every interaction of the queue (oldest first) and its annotations: two queries, no join fan-out."""
    queue, _ = get_queue(session, queue_id=queue_id)
    conn = session.connection()
    interactions = conn.execute(select(*_READ_INTERACTION).where(_I.queue_pk == queue.pk)
                                .order_by(_I.pk)).tuples().all()
    # Ordered by pk alone, the order the queue_pk index already has (no sort); grouping keeps it.
    annotations = conn.execute(select(*_READ_ANNOTATION).where(_A.queue_pk == queue.pk).order_by(_A.pk))
    return interactions, _group(annotations)


def annotated_interaction(session: Session, *, queue_id: str, interaction_id: str) -> tuple[Any, Sequence[Any]]:
    queue, _ = get_queue(session, queue_id=queue_id)
    conn = session.connection()
    row = conn.execute(select(*_READ_INTERACTION).where(_I.queue_pk == queue.pk, _I.id == interaction_id)).first()
    if row is None:
        raise NotFound(f"interaction {interaction_id!r} not found in queue {queue_id}")
    annotations = conn.execute(select(*_READ_ANNOTATION).where(_A.interaction_pk == row.pk)
                               .order_by(_A.pk)).tuples().all()
    return row, annotations


def annotated_by_content_ids(session: Session, *, content_ids: Sequence[str], offset: int,
                             limit: int) -> tuple[int, Sequence[Any], dict[int, list[Any]]]:
    """Interactions of any live queue showing these contents, with their queue's id and name."""
    if not content_ids:
        return 0, [], {}
    queues = AnnotationQueue.__table__.c
    projects = Project.__table__.c
    joined = (AnnotationInteraction.__table__
              .join(AnnotationQueue.__table__, queues.pk == _I.queue_pk)
              .join(Project.__table__, projects.pk == queues.project_pk))
    where = (_I.content_id.in_(content_ids), projects.deleted_at.is_(None))
    conn = session.connection()
    total = conn.execute(select(func.count()).select_from(joined).where(*where)).scalar() or 0
    # OFFSET is the API's own paging here, over the few interactions a set of content ids names.
    page = conn.execute(select(*_READ_INTERACTION, queues.id.label("queue_id"), queues.name.label("queue_name"))
                        .select_from(joined).where(*where).order_by(_I.pk).offset(offset).limit(limit)).tuples().all()
    grouped: dict[int, list[Any]] = {}
    if page:
        grouped = _group(conn.execute(select(*_READ_ANNOTATION).where(
            _A.interaction_pk.in_([r[0] for r in page])).order_by(_A.pk)))
    return total, page, grouped
