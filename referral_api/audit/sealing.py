"""Sealing the audit chain: at commit without waiting for the head, or later (see services.py's
docstring for the design). `record()` in services.py queues events under PENDING; the session hooks
here seal them."""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..db import UNIT_OF_WORK, pipelined
from .models import CANONICAL_COLUMNS, GENESIS_HASH, AuditEvent, canonical

# pg_advisory_xact_lock key of the chain head ("audit" in ASCII): held by the one sealer at a time.
CHAIN_LOCK = 0x6175646974
PENDING = "referral_api.audit.pending"
_FLUSH_PIPELINED = "referral_api.audit.flush_pipelined"
_WITH_COMMIT = "referral_api.audit.with_commit"
_SEAL_BATCH = 1000


# Built once (statements constructed per commit cost more than sending them).
_TAKE_HEAD = sa.select(sa.func.pg_advisory_xact_lock(CHAIN_LOCK))
_TRY_HEAD = sa.select(sa.func.pg_try_advisory_xact_lock(CHAIN_LOCK))
def _head_and_unsealed() -> sa.Select[Any]:
    """One round trip: the head, and the unsealed events after it (narrow rows, Core)."""
    column = AuditEvent.__table__.c
    newest = sa.select(sa.func.max(column.seq)).scalar_subquery()
    return (
        sa.select(column.seq, column.hash, column.id)
        .where(sa.or_(column.seq.is_(None), column.seq == newest))
        .order_by(column.seq.is_(None), column.occurred_at, column.id)
        .limit(_SEAL_BATCH + 1)
    )


_HEAD_AND_UNSEALED = _head_and_unsealed()


def _lock_chain_head(session: Session, *, wait: bool) -> bool:
    """Take the head for this transaction: True when taken (always on SQLite and with `wait`)."""
    if session.get_bind().dialect.name == "postgresql":
        if wait:
            session.execute(_TAKE_HEAD)
            return True
        return bool(session.connection().scalar(_TRY_HEAD))
    # SQLite has one writer at a time: a (no-op) write takes the database write lock now, before the
    # head is read, so two sealers cannot both build on the same head.
    session.execute(sa.text("UPDATE audit_events SET seq = seq WHERE 0 = 1"))
    return True


def _seal(session: Session, own: list[AuditEvent]) -> list[AuditEvent]:
    """Under the head's lock: chain the committed unsealed events (oldest first, at most a batch), then
    `own` in the order they were recorded. The caller's flush writes the seals. Returns the others."""
    with session.no_autoflush:
        found = session.execute(_HEAD_AND_UNSEALED).all()
        mine = {e.id for e in own}
        head = next((row for row in found if row.seq is not None), None)
        todo = [row.id for row in found if row.seq is None and row.id not in mine][:_SEAL_BATCH]
        # Usually none: a committing writer inserts its own events sealed. Those of writers that found
        # the head taken are read whole (their canonical columns are hashed) in a second statement.
        loaded = {e.id: e for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.id.in_(todo)))} \
            if todo else {}
    others = [loaded[i] for i in todo]
    _link([*others, *own], *((head.seq, head.hash) if head is not None else (0, GENESIS_HASH)))
    return others


def _unsealed_rows() -> str:
    """The committed unsealed events, oldest first, a batch at most, through the partial index of
    unsealed events: the columns canonical() takes between seq and prev_hash (those the seal sets), as
    SQL for the driver (one more statement in _try_head's round trip)."""
    column = AuditEvent.__table__.c
    statement = (
        sa.select(*(column[name] for name in CANONICAL_COLUMNS[1:-1]))
        .where(column.seq.is_(None))
        .order_by(column.occurred_at, column.id)
        .limit(_SEAL_BATCH)
    )
    return str(statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


_UNSEALED_ROWS = _unsealed_rows()
_SET_SEAL = "UPDATE audit_events SET seq = %s, prev_hash = %s, hash = %s WHERE id = %s AND seq IS NULL"


def _try_head(session: Session) -> tuple[bool, tuple[int, str], list[tuple[Any, ...]]]:
    """psycopg, one round trip (with the BEGIN if none was sent): try the head's lock, then read the
    head and the committed unsealed events, each in a new statement (its snapshot taken after the
    lock). (locked, (seq, hash) of the head, unsealed rows: those of this transaction too, if flushed)."""
    dbapi_connection = session.connection().connection.dbapi_connection
    lock, head, unsealed = dbapi_connection.cursor(), dbapi_connection.cursor(), dbapi_connection.cursor()
    with dbapi_connection.pipeline():
        if dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            dbapi_connection.execute("BEGIN")
        lock.execute("SELECT pg_try_advisory_xact_lock(%s)", (CHAIN_LOCK,))
        head.execute("SELECT seq, hash FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
        unsealed.execute(_UNSEALED_ROWS)
    locked, found = bool(lock.fetchone()[0]), head.fetchone()
    return locked, (found[0], found[1]) if found else (0, GENESIS_HASH), unsealed.fetchall()


def _seal_rows(session: Session, rows: list[tuple[Any, ...]], seq: int, prev_hash: str
               ) -> tuple[list[tuple[int, str, str, Any]], int, str]:
    """Chain others' committed events from their rows as read (no ORM load): their (seq, prev_hash, hash,
    id) to write, and the new head. An instance of one in this session gets the seal as its loaded state."""
    seals = []
    for row in rows:
        seq += 1
        digest = hashlib.sha256(canonical(seq, *row, prev_hash)).hexdigest()
        seals.append((seq, prev_hash, digest, row[0]))
        known = session.identity_map.get(identity_key(AuditEvent, row[0]))
        if known is not None:
            for name, value in (("seq", seq), ("prev_hash", prev_hash), ("hash", digest)):
                set_committed_value(known, name, value)
        prev_hash = digest
    return seals, seq, prev_hash


def _link(events: list[AuditEvent], seq: int, prev_hash: str) -> None:
    for event in events:
        seq += 1
        event.seq, event.prev_hash = seq, prev_hash
        event.hash = prev_hash = event.compute_hash()


@sa_event.listens_for(Session, "before_commit")
def _seal_on_commit(session: Session) -> None:
    """At the outermost commit of a transaction that recorded events: seal, if the head is free now.
    On psycopg the lock, the head and the events waiting unsealed are one round trip read with the
    driver (nothing is autoflushed unsealed); the seals of those others travel with this transaction's
    writes (after `commit_pipelined`, they, the flush and the COMMIT are one more round trip)."""
    if session.in_nested_transaction():
        _send_with_commit_now(session)
        return
    own = [e for e in session.info.get(PENDING, ()) if e in session and e.seq is None]
    if not own or session.get_bind().dialect.driver != "psycopg":
        _send_with_commit_now(session)
        if own:
            # No autoflush before the seal: own events still pending are then inserted sealed (no
            # UPDATE, and never an entry of the unsealed index).
            with session.no_autoflush:
                if _lock_chain_head(session, wait=False):
                    _seal(session, own)
        return
    locked, (seq, prev_hash), unsealed = _try_head(session)
    seals: list[tuple[int, str, str, Any]] = []
    if locked:
        mine = {e.id for e in own}  # own events flushed already are among the unsealed rows
        seals, seq, prev_hash = _seal_rows(session, [r for r in unsealed if r[0] not in mine], seq, prev_hash)
        _link(own, seq, prev_hash)  # flushed ones are updated by the flush, the others inserted sealed
    _write_seals_and_events(session, own, seals, session.info.pop(_FLUSH_PIPELINED, False))


def _write_seals_and_events(session: Session, own: list[AuditEvent], seals: list[tuple[int, str, str, Any]],
                            pipelined_commit: bool) -> None:
    """psycopg: the others' seals, and, when the rest of the transaction's writes allow it, its own
    new events (one Core INSERT, no unit of work) and the COMMIT, in one pipelined round trip. Else
    the seals alone (one round trip) and the commit's flush inserts or updates own events."""
    connection = session.connection()
    fresh = [e for e in own if e in session.new]
    others_pending = bool(session.deleted or session.dirty or len(session.new) > len(fresh))
    with_events = len(fresh) == len(own) and (pipelined_commit or not others_pending)
    with_commit = session.info.pop(_WITH_COMMIT, [])
    if not (seals or with_events or with_commit):
        return
    dbapi_connection = connection.connection.dbapi_connection
    if with_events:
        for event in fresh:
            session.expunge(event)
    with pipelined(session):
        if seals:
            dbapi_connection.cursor().executemany(_SET_SEAL, seals)
        for statement, parameters in with_commit:
            connection.execute(statement, parameters)
        if with_events:
            if pipelined_commit:  # its other writes: only INSERTs (commit_pipelined's contract)
                session.flush()
            connection.execute(_INSERT_EVENTS, [_columns(e) for e in fresh])
            if not connection.in_nested_transaction():  # not a session joined to an outer transaction
                dbapi_connection.execute("COMMIT")  # then the driver's is a no-op
    for event in fresh:  # written: in the session as a flush leaves them
        make_transient_to_detached(event)
        session.add(event)


def send_with_commit(session: Session, statement: sa.Executable, parameters: dict[str, Any]) -> None:
    """Execute `statement` (a write returning no rows, whose rowcount nobody reads) at this transaction's
    commit: on psycopg in the pipeline of the audit events' INSERT and the COMMIT (no round trip of its
    own), else just before the commit's flush. Dropped with a rollback."""
    session.connection()  # within the session's transaction (begun if none: nothing sent), to end with it
    session.info.setdefault(_WITH_COMMIT, []).append((statement, parameters))


def _send_with_commit_now(session: Session) -> None:
    deferred = session.info.pop(_WITH_COMMIT, None)
    if deferred:
        connection = session.connection()
        for statement, parameters in deferred:
            connection.execute(statement, parameters)


_INSERT_EVENTS = AuditEvent.__table__.insert()
_EVENT_COLUMNS = tuple(column.key for column in AuditEvent.__table__.columns)


def _columns(event: AuditEvent) -> dict[str, Any]:
    return {key: getattr(event, key) for key in _EVENT_COLUMNS}


def commit_pipelined(session: Session) -> None:
    """Commit a session whose pending changes are INSERTs needing no RETURNING (ids set in Python) and
    no reads while flushed: on psycopg they, the sealed events and the COMMIT travel in one pipeline
    round trip (a failure raises from here, as from a commit). In a unit of work only a flush."""
    if UNIT_OF_WORK in session.info:
        session.flush()
        return
    session.info[_FLUSH_PIPELINED] = True
    try:
        session.commit()
    finally:
        session.info.pop(_FLUSH_PIPELINED, None)


@sa_event.listens_for(Session, "after_transaction_end")
def _forget_pending(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(PENDING, None)
        session.info.pop(_WITH_COMMIT, None)


def seal_pending(session: Session) -> int:
    """Seal every committed event still unsealed, a batch per transaction (waits for the head's lock).
    Commits the session: call it on a session without work of its own. Returns how many were sealed."""
    total = 0
    while session.scalar(sa.select(AuditEvent.id).where(AuditEvent.seq.is_(None)).limit(1)) is not None:
        _lock_chain_head(session, wait=True)
        sealed = _seal(session, [])
        session.commit()
        for event in sealed:  # the session's map stays small
            session.expunge(event)
        total += len(sealed)
        if not sealed:
            break
    return total
