"""Writing, sealing, listing and verifying the audit trail.

Writers do not queue on the chain head. `record()` adds the event to the caller's transaction
unsealed (no seq, prev_hash, hash) and takes no lock. When the transaction commits (the outermost
commit), `sealing._seal_on_commit` tries the head's lock without waiting
(`pg_try_advisory_xact_lock`): the one transaction that gets it reads the head and seals, in order,
the committed events still unsealed (others' transactions that did not get the lock; on psycopg those
with a seal input) and then its own (inserted sealed, or updated when an earlier flush wrote them);
the lock ends with its commit. A transaction that does not get it
commits its events unsealed and moves on: the next sealer seals them (under load, the next commit;
otherwise `audit seal`, `audit verify` or `audit checkpoint`, which wait for the lock and seal
everything committed, and the webhook worker every 10 s). On PostgreSQL with psycopg the database
does this in `audit_append()` (migration 0996), sent with the COMMIT (or, when one write and the
events are the whole transaction, in one statement with that write), from each event's seal input
(its canonical JSON with the chain position left open); on SQLite, which has one writer at a time,
the committing transaction takes the write lock and always seals, here.

A seal is set once: on PostgreSQL the append-only trigger lets through only an update from NULL that
changes no other column (it clears the seal input itself), and the application role may update only
the three seal columns. The chain therefore detects what it detected before (a changed, removed, inserted or
reordered sealed event; with a checkpoint, a truncated or rewritten tail); events not yet sealed are
counted by `verify()` as `unsealed`, not checked. Sealing reads the head in a new statement after
taking the lock, so it needs READ COMMITTED (the default), as the service uses.
"""

from __future__ import annotations

import hashlib
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
from ..paging import cursor_int, decode_cursor, page
from ..progress import Progress
from .actions import AuditAction, Outcome
from .models import CANONICAL_COLUMNS, GENESIS_HASH, AuditEvent, canonical
from .sealing import PENDING, has_events_to_commit, queue_event, seal_pending

_VERIFY_BATCH = 2000

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
    """Append several audit events (each the keyword arguments of `record()`): no lock, no round trip
    of their own; they are inserted with the caller's next flush and sealed at its commit."""
    made = [AuditEvent(**_fields(**entry)) for entry in entries]
    session.add_all(made)
    session.info.setdefault(PENDING, []).extend(made)
    return made


def record_with_commit(session: Session, **entry: Any) -> None:
    """`record()` for an event that nothing reads before the caller's commit (the keyword arguments of
    `record()`): not an object of the session, only its values, sent with the commit (on PostgreSQL in
    the `audit_append()` call that travels with the COMMIT; elsewhere added to the session then). The
    token endpoint's events: the same row, seal and guarantees, without the unit of work's cost. Sealed
    after the events the session holds (`record()`'s) of the same commit, in the order recorded, when
    the commit takes the chain's head; when another sealer holds it, the commit's events wait unsealed
    and the next sealer chains every waiting event by (occurred_at, id), its time of recording. Dropped
    with a rollback, and with the rollback of a savepoint begun before it was recorded."""
    queue_event(session, _fields(**entry))


def _fields(
    *,
    actor: Any,
    action: AuditAction | str,
    resource_type: str,
    resource_id: Any = None,
    outcome: Outcome | str = Outcome.SUCCESS,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An event's CONTENT_COLUMNS values, checked."""
    action = AuditAction(action)
    outcome = Outcome(outcome)
    if details is not None:
        if not isinstance(details, dict):
            raise TypeError("details must be a dict")
        # Hash exactly what the JSON column will give back (UUIDs and dates as strings, tuples as lists).
        details = json.loads(json.dumps(details, default=str))
    org, client, user = _actor_ids(actor)
    return {
        "id": uuid.uuid4(),
        "occurred_at": utcnow(),
        "organisation_id": org,
        "client_id": client,
        "user_id": user,
        "action": action.value,
        "resource_type": resource_type,
        "resource_id": None if resource_id is None else str(resource_id),
        "outcome": outcome,
        "request_id": g.get("request_id") if has_request_context() else None,
        "details": details,
    }


@dataclass
class VerifyResult:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    checkpoint_seq: int | None = None
    unsealed: int = 0


def _chain(session: Session) -> Iterator[Any]:
    """The sealed events' canonical fields and hash in chain order, streamed (a server-side cursor on
    PostgreSQL): memory stays flat however long the chain."""
    table = AuditEvent.__table__.c
    columns = [table[c] for c in CANONICAL_COLUMNS]
    if session.get_bind().dialect.name == "postgresql":
        # The driver's own values (an aware datetime, the outcome as text): canonical() takes them as
        # they are, without the model's per-row conversions.
        raw = {"occurred_at": sa.DateTime(timezone=True), "outcome": sa.String()}
        columns = [sa.type_coerce(c, raw[c.name]).label(c.name) if c.name in raw else c for c in columns]
    stmt = (
        sa.select(*columns, table.hash)
        .where(table.seq.is_not(None))
        .order_by(table.seq)
    )
    yield from session.execute(stmt, execution_options={"yield_per": _VERIFY_BATCH})


def _problem(row: Any, expected_seq: int, prev_hash: str) -> str | None:
    seq = row[0]
    if seq != expected_seq:
        return (f"event {seq} follows event {expected_seq - 1}: "
                f"event {expected_seq} is missing or the order was changed")
    if row[12] != prev_hash:
        return f"event {seq} does not link to event {expected_seq - 1} (inserted, removed or reordered)"
    if hashlib.sha256(canonical(*row[:13])).hexdigest() != row[13]:
        return f"event {seq} was changed: its hash does not match its fields"
    return None


def verify(session: Session, *, checkpoint: tuple[int, str] | None = None,
           progress: Progress | None = None, seal: bool = True) -> VerifyResult:
    """Walk the sealed chain from the first event; the first event that is changed, missing, inserted or
    out of order is named by its seq. With a checkpoint (seq, hash) the log must still contain that head.

    First seals what is committed and unsealed (not with `seal=False`, a read-only walk, nor when the
    session has events of its own to commit); unsealed events are counted in `unsealed`, not checked."""
    if seal and not has_events_to_commit(session):
        seal_pending(session)
    expected_seq, prev_hash, checked = 1, GENESIS_HASH, 0
    cp_seen = checkpoint is None or checkpoint[0] == 0
    progress = progress or Progress()
    progress.start(head(session)[0])
    cp = checkpoint[0] if checkpoint else None
    sha256 = hashlib.sha256
    for row in _chain(session):
        if (row[0] == expected_seq and row[12] == prev_hash and row[0] != cp
                and sha256(canonical(*row[:13])).hexdigest() == row[13]):
            problem = None  # the common case, checked in one expression; the reasons below
        else:
            problem = _problem(row, expected_seq, prev_hash)
        if problem is None and row[0] == cp:
            if row[13] != checkpoint[1]:
                problem = f"event {row[0]} differs from the checkpoint's head at that position"
            cp_seen = True
        if problem:
            progress.advance(checked % _VERIFY_BATCH)
            return VerifyResult(False, checked, expected_seq - 1, prev_hash, row[0], problem, cp)
        checked += 1
        expected_seq, prev_hash = row[0] + 1, row[13]
        if checked % _VERIFY_BATCH == 0:
            progress.advance(_VERIFY_BATCH)
    progress.advance(checked % _VERIFY_BATCH)
    unsealed = session.scalar(sa.select(sa.func.count()).where(AuditEvent.seq.is_(None))) or 0
    if not cp_seen:
        return VerifyResult(False, checked, expected_seq - 1, prev_hash, cp,
                            f"the log ends at event {expected_seq - 1}, before the checkpoint's event "
                            f"{cp}: events were removed", cp, unsealed)
    return VerifyResult(True, checked, expected_seq - 1, prev_hash, checkpoint_seq=cp, unsealed=unsealed)


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the last sealed event, (0, genesis) for an empty log."""
    row = session.execute(
        sa.select(AuditEvent.seq, AuditEvent.hash)
        .where(AuditEvent.seq.is_not(None))
        .order_by(AuditEvent.seq.desc())
        .limit(1)
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
    """Sealed events newest first, filtered; keyset pages on seq. `actor_id` matches a user or client id."""
    query = sa.select(AuditEvent).where(AuditEvent.seq.is_not(None))
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
        query = query.where(AuditEvent.seq < cursor_int(after_seq))
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
