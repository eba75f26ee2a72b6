"""Writing, listing and verifying the audit trail."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import g, has_request_context
from sqlalchemy.orm import Session

from ..db import utcnow
from ..errors import InvalidPayload
from ..paging import decode_cursor, page
from ..progress import Progress
from .actions import AuditAction, Outcome
from .models import GENESIS_HASH, AuditEvent

# pg_advisory_xact_lock key of the chain head ("audit" in ASCII): writers of any process queue here.
_CHAIN_LOCK = 0x6175646974
_VERIFY_BATCH = 1000


def _lock_chain_head(session: Session) -> None:
    """Serialise writers on the chain head until the caller's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK)))
    else:
        # SQLite has one writer at a time: a (no-op) write takes the database write lock now, before
        # the head is read, so two writers cannot both build on the same head.
        session.execute(sa.text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))


def _actor_ids(actor: Any) -> tuple[uuid.UUID | None, str | None, str | None]:
    if actor is None:
        return None, None, None
    org = getattr(actor, "organisation_id", None)
    client = getattr(actor, "client_id", None)
    user = getattr(actor, "user_id", None)
    if org is not None and not isinstance(org, uuid.UUID):
        org = uuid.UUID(str(org))
    return org, None if client is None else str(client), None if user is None else str(user)


def record(
    session: Session,
    *,
    actor: Any,
    action: AuditAction | str,
    resource_type: str,
    resource_id: Any = None,
    outcome: Outcome | str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event in the caller's transaction (the caller commits).

    `actor` has optional `organisation_id`, `client_id`, `user_id` attributes, or is None for the
    system and the command line. `details` is JSON without personal data (ids, counts, reasons).
    """
    return record_many(session, [{"actor": actor, "action": action, "resource_type": resource_type,
                                  "resource_id": resource_id, "outcome": outcome, "details": details}])[0]


def record_many(session: Session, entries: list[dict[str, Any]]) -> list[AuditEvent]:
    """Append several audit events (each the keyword arguments of `record()`): one lock, one flush."""
    if not entries:
        return []
    _lock_chain_head(session)
    head = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    made = []
    for entry in entries:
        seq += 1
        event = _event(seq=seq, prev_hash=prev_hash, **entry)
        prev_hash = event.hash
        made.append(event)
    session.add_all(made)
    # Flushed now so that a later record() in this transaction reads these events as the head.
    session.flush()
    return made


def _event(
    *,
    seq: int,
    prev_hash: str,
    actor: Any,
    action: AuditAction | str,
    resource_type: str,
    resource_id: Any = None,
    outcome: Outcome | str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    action = AuditAction(action)
    outcome = Outcome(outcome)
    if details is not None:
        if not isinstance(details, dict):
            raise TypeError("details must be a dict")
        # Hash exactly what the JSON column will give back (UUIDs and dates as strings, tuples as lists).
        details = json.loads(json.dumps(details, default=str))
    org, client, user = _actor_ids(actor)
    event = AuditEvent(
        id=uuid.uuid4(),
        seq=seq,
        occurred_at=utcnow(),
        organisation_id=org,
        client_id=client,
        user_id=user,
        action=action.value,
        resource_type=resource_type,
        resource_id=None if resource_id is None else str(resource_id),
        outcome=outcome,
        request_id=g.get("request_id") if has_request_context() else None,
        details=details,
        prev_hash=prev_hash,
    )
    event.hash = event.compute_hash()
    return event


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None


def iter_events(session: Session) -> Iterator[AuditEvent]:
    """Every event in chain order, read in batches as detached copies (the session's map stays small)."""
    table = AuditEvent.__table__
    last = 0
    while True:
        rows = session.execute(
            sa.select(table).where(table.c.seq > last).order_by(table.c.seq).limit(_VERIFY_BATCH)
        ).mappings().all()
        if not rows:
            return
        for row in rows:
            yield AuditEvent(**row)
        last = rows[-1]["seq"]


def verify(session: Session, *, checkpoint: tuple[int, str] | None = None,
           progress: Progress | None = None) -> VerifyResult:
    """Walk the chain from the first event; the first event that is changed, missing, inserted or out of
    order is named by its seq. With a checkpoint (seq, hash) the log must still contain that head."""
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    cp_seen = checkpoint is None or checkpoint[0] == 0
    progress = progress or Progress()
    progress.start(head(session)[0])
    for event in iter_events(session):
        progress.advance()
        problem = None
        if event.seq != expected_seq:
            problem = (f"event {event.seq} follows event {expected_seq - 1}: "
                       f"event {expected_seq} is missing or the order was changed")
        elif event.prev_hash != prev_hash:
            problem = (f"event {event.seq} does not link to event {expected_seq - 1} "
                       "(inserted, removed or reordered)")
        elif event.compute_hash() != event.hash:
            problem = f"event {event.seq} was changed: its hash does not match its fields"
        elif checkpoint is not None and event.seq == checkpoint[0]:
            if event.hash != checkpoint[1]:
                problem = f"event {event.seq} differs from the checkpoint's head at that position"
            cp_seen = True
        if problem:
            return VerifyResult(False, checked, expected_seq - 1, prev_hash, event.seq, problem,
                                checkpoint[0] if checkpoint else None)
        checked += 1
        expected_seq, prev_hash = event.seq + 1, event.hash
    if not cp_seen:
        assert checkpoint is not None
        return VerifyResult(False, checked, expected_seq - 1, prev_hash, checkpoint[0],
                            f"the log ends at event {expected_seq - 1}, before the checkpoint's event "
                            f"{checkpoint[0]}: events were removed", checkpoint[0])
    return VerifyResult(True, checked, expected_seq - 1, prev_hash,
                        checkpoint_seq=checkpoint[0] if checkpoint else None)


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the last event, (0, genesis) for an empty log."""
    row = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
    ).first()
    return (row.seq, row.hash) if row else (0, GENESIS_HASH)


def list_events(
    session: Session,
    *,
    actor_id: str | None = None,
    organisation_id: uuid.UUID | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int,
    cursor: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """Events newest first, filtered; keyset pages on seq. `actor_id` matches a user or client id."""
    query = sa.select(AuditEvent)
    if actor_id is not None:
        query = query.where(
            sa.or_(AuditEvent.user_id == str(actor_id), AuditEvent.client_id == str(actor_id))
        )
    if organisation_id is not None:
        query = query.where(AuditEvent.organisation_id == organisation_id)
    if resource_type is not None:
        query = query.where(AuditEvent.resource_type == resource_type)
    if resource_id is not None:
        query = query.where(AuditEvent.resource_id == str(resource_id))
    if action is not None:
        query = query.where(AuditEvent.action == str(action))
    if since is not None:
        query = query.where(AuditEvent.occurred_at >= since)
    if until is not None:
        query = query.where(AuditEvent.occurred_at < until)
    if cursor:
        (after_seq,) = decode_cursor(cursor, size=1)
        if not isinstance(after_seq, int):
            raise InvalidPayload(errors={"cursor": ["not a cursor this list gave out"]})
        query = query.where(AuditEvent.seq < after_seq)
    rows = list(session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)))
    return page(rows, limit=limit, key=lambda e: [e.seq])


def read_page(session: Session, actor: Any, args: dict[str, Any]) -> tuple[list[AuditEvent], str | None]:
    """A page of events for the API; reading the trail is itself audited."""
    filters = {k: v for k, v in args.items() if k not in {"limit", "cursor"}}
    items, next_cursor = list_events(session, limit=args["limit"], cursor=args.get("cursor"), **filters)
    record(session, actor=actor, action=AuditAction.AUDIT_EVENT_LIST, resource_type="audit_event",
           details={"count": len(items), "filters": sorted(filters)})
    session.commit()
    return items, next_cursor


def verify_as(session: Session, actor: Any, *, checkpoint: tuple[int, str] | None = None) -> VerifyResult:
    """Verify the chain for the API and the console (against a checkpoint read by
    checkpoints.read_checkpoint, when given), and audit that it was verified and how it came out."""
    result = verify(session, checkpoint=checkpoint)
    details: dict[str, Any] = {"ok": result.ok, "checked": result.checked}
    if checkpoint is not None:
        details["checkpoint_seq"] = checkpoint[0]
    record(session, actor=actor, action=AuditAction.AUDIT_CHAIN_VERIFY, resource_type="audit_event",
           outcome=Outcome.SUCCESS if result.ok else Outcome.FAILURE, details=details)
    session.commit()
    return result
