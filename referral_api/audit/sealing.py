"""Sealing the audit chain: at commit without waiting for the head, or later (see services.py's
docstring for the design). `record()` in services.py queues events under PENDING; the session hooks
here seal them."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from ..db import UNIT_OF_WORK, nothing_begun, pipelined
from .actions import Outcome
from .models import CONTENT_COLUMNS, GENESIS_HASH, AuditEvent, open_seal_input

# pg_advisory_xact_lock key of the chain head ("audit" in ASCII): held by the one sealer at a time.
CHAIN_LOCK = 0x6175646974
PENDING = "referral_api.audit.pending"
_FLUSH_PIPELINED = "referral_api.audit.flush_pipelined"
_WITH_COMMIT = "referral_api.audit.with_commit"
_EVENTS_WITH_COMMIT = "referral_api.audit.events_with_commit"
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


def _link(events: list[AuditEvent], seq: int, prev_hash: str) -> None:
    for event in events:
        seq += 1
        event.seq, event.prev_hash = seq, prev_hash
        event.hash = prev_hash = event.compute_hash()


@sa_event.listens_for(AuditEvent, "before_insert")
def _keep_seal_input(_mapper: Any, connection: Any, event: AuditEvent) -> None:
    """An event flushed unsealed on PostgreSQL keeps what the database needs to seal it (`audit_append`;
    the trigger clears it with the seal, whoever seals)."""
    if event.seq is None and connection.dialect.name == "postgresql":
        event.seal_input = event.make_seal_input()


@sa_event.listens_for(Session, "before_commit")
def _seal_on_commit(session: Session) -> None:
    """At the outermost commit of a transaction that recorded events: seal, if the head is free now.
    On psycopg the database does it (`_append_in_database`); elsewhere the lock is tried and the events
    sealed here before they are inserted."""
    if session.in_nested_transaction():  # a savepoint released: the outermost commit seals and sends
        return
    own = [e for e in session.info.get(PENDING, ()) if e in session and e.seq is None]
    queued = _take(session, _EVENTS_WITH_COMMIT)  # record_with_commit's: values, not objects
    in_database = session.get_bind().dialect.driver == "psycopg"
    if queued and not in_database:
        made = [AuditEvent(**fields) for fields in queued]
        session.add_all(made)
        own.extend(made)
    if not in_database or not (own or queued):
        _send_with_commit_now(session)
        if own:
            # No autoflush before the seal: own events still pending are then inserted sealed (no
            # UPDATE, and never an entry of the unsealed index).
            with session.no_autoflush:
                if _lock_chain_head(session, wait=False):
                    _seal(session, own)
        return
    _append_in_database(session, own, queued, session.info.pop(_FLUSH_PIPELINED, False))


# migration 0996: seals what waits, then inserts the new events (sealed if it got the head)
_APPEND = ("SELECT sealed_id, sealed_seq, sealed_prev_hash, sealed_hash"
           " FROM audit_append(%s::json, %s::uuid[])")


def _append_in_database(session: Session, own: list[AuditEvent], queued: list[dict[str, Any]],
                        pipelined_commit: bool) -> None:
    """psycopg: the transaction's other writes are flushed (in the pipeline after `commit_pipelined`),
    then `audit_append()` gets its new events, and the COMMIT follows in the same round trip. The
    function tries the head's lock without waiting: with it, it reads the head, seals the committed
    events waiting (their stored seal input), this transaction's flushed ones and inserts the new ones
    sealed; without it, it inserts them unsealed. The seals it made become the loaded state of the
    events this session holds. The session's own events are sealed first (those flushed, then the new
    ones, each in the order recorded), then the `queued` values of record_with_commit, as on SQLite."""
    fresh = [e for e in own if e in session.new]
    flushed = [e.id for e in own if e not in session.new]  # inserted unsealed by an earlier flush
    for event in fresh:
        session.expunge(event)
    if not pipelined_commit:
        session.flush()  # before the lock is tried: it is then held for the one round trip left
    # raw characters, not \u escapes: PostgreSQL refuses those above ASCII unless the database is UTF-8
    rows = json.dumps([_row(fields) for fields in (*(_content(event) for event in fresh), *queued)],
                      ensure_ascii=False)
    connection = session.connection()
    dbapi_connection = connection.connection.dbapi_connection
    alone = _alone(session, connection, flushed) if pipelined_commit else None
    if alone is not None:
        seals = _append_alone(connection, *alone, rows)
    else:
        with dbapi_connection.cursor() as cursor:
            with pipelined(session):
                if pipelined_commit:  # its other writes: only INSERTs (commit_pipelined's contract)
                    session.flush()
                for statement, parameters in _take(session, _WITH_COMMIT):
                    _send(connection, statement, parameters)
                cursor.execute(_APPEND, (rows, flushed))
                if not connection.in_nested_transaction():  # not a session joined to an outer transaction
                    dbapi_connection.execute("COMMIT")  # then the driver's is a no-op
            seals = {row[0]: row[1:] for row in cursor.fetchall()}
    for event in fresh:  # written: in the session as a flush leaves them
        event.seq, event.prev_hash, event.hash = seals.get(event.id, (None, None, None))
        make_transient_to_detached(event)
        session.add(event)
    if not session.identity_map:
        return
    for event_id, (seq, prev_hash, digest) in seals.items():
        known = session.identity_map.get(identity_key(AuditEvent, event_id))
        if known is not None and known.seq is None:
            for name, value in (("seq", seq), ("prev_hash", prev_hash), ("hash", digest)):
                set_committed_value(known, name, value)


# The one write and the function call as one statement: `WITH written AS (<the write>) <this>`.
_APPEND_AFTER_WRITE = ("SELECT sealed_id, sealed_seq, sealed_prev_hash, sealed_hash"
                       " FROM audit_append(%(audit_append_events)s::json, '{}'::uuid[])")


def _alone(session: Session, connection: sa.Connection, flushed: list[Any]) -> tuple[str, dict] | None:
    """The transaction's one write as SQL and values, when the write and the events are the whole
    transaction: nothing sent yet (no BEGIN), nothing to flush, no event flushed earlier, one queued
    write whose SQL is its parameters'. Then it and `audit_append()` go as one statement, a transaction
    of its own (autocommit): no BEGIN, no COMMIT, no pipeline. None otherwise."""
    queued = session.info.get(_WITH_COMMIT) or []
    if flushed or len(queued) != 1 or session.new or session.dirty or session.deleted \
            or not nothing_begun(connection):
        return None
    statement, parameters = queued[0][1]
    found = _compiled(connection.dialect, statement, parameters)
    if found is None or "audit_append_events" in parameters:
        return None
    _take(session, _WITH_COMMIT)
    sql, processors = found
    return sql, _bound(parameters, processors)


def _append_alone(connection: sa.Connection, sql: str, values: dict[str, Any],
                  rows: str) -> dict[Any, tuple[Any, ...]]:
    dbapi_connection = connection.connection.dbapi_connection
    dbapi = connection.dialect.loaded_dbapi
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"WITH written AS ({sql}) {_APPEND_AFTER_WRITE}",
                           {**values, "audit_append_events": rows})
            return {row[0]: row[1:] for row in cursor.fetchall()}
    except dbapi.Error as error:
        raise sa.exc.DBAPIError.instance(None, None, error, dbapi.Error) from error


# (dialect, statement, its parameters' names) -> its SQL and its parameters' bind processors, or None:
# a statement SQLAlchemy executes (`_driver_sql`)
_DRIVER_SQL: dict[tuple[Any, Any, tuple[str, ...]], tuple[str, dict[str, Any]] | None] = {}
_DRIVER_SQL_MAX = 64


def _send(connection: sa.Connection, statement: sa.Executable, parameters: dict[str, Any]) -> None:
    """A queued write sent by psycopg itself, compiled once per statement and parameter names (those of
    send_with_commit are built once, at import), its values through their types' bind processors (a
    naive datetime refused as UTCDateTime does): SQLAlchemy's execution of a statement costs more in
    Python than the statement costs the database. A statement whose SQL is not simply its parameters'
    (a column default to compute, escaped or expanding bind names, a positional style) goes through
    SQLAlchemy. Only inside `pipelined()`, which has sent the transaction's BEGIN (SQLAlchemy's
    engine events, the lazy BEGIN among them, do not see this statement); a driver error raises from
    the pipeline's end as SQLAlchemy's, a bind processor's as its own (a ValueError)."""
    found = _compiled(connection.dialect, statement, parameters)
    if found is None:
        connection.execute(statement, parameters)
        return
    sql, processors = found
    connection.connection.dbapi_connection.execute(sql, _bound(parameters, processors))


def _compiled(dialect: sa.Dialect, statement: sa.Executable,
              parameters: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    key = (dialect, statement, tuple(parameters))
    found = _DRIVER_SQL.get(key, False)
    if found is False:
        if len(_DRIVER_SQL) >= _DRIVER_SQL_MAX:  # statements built per call: nothing to gain, keep none
            _DRIVER_SQL.clear()
        found = _DRIVER_SQL[key] = _driver_sql(dialect, statement, parameters)
    return found


def _bound(parameters: dict[str, Any], processors: dict[str, Any]) -> dict[str, Any]:
    values = dict(parameters)
    for name, process in processors.items():
        values[name] = process(values[name])
    return values


def _driver_sql(dialect: sa.Dialect, statement: sa.Executable,
                parameters: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The statement's SQL with a named placeholder per parameter and the bind processors of its values,
    or None when its SQL is not that (then SQLAlchemy executes it)."""
    compiled = statement.compile(dialect=dialect, column_keys=list(parameters))
    plain = (set(compiled.binds) == set(parameters) and not compiled.positional
             and not compiled.escaped_bind_names and not compiled.literal_execute_params
             and not compiled.post_compile_params
             and not any(bind.expanding for bind in compiled.binds.values()))
    if not plain:
        return None
    processors = {name: bind.type.dialect_impl(dialect).bind_processor(dialect)
                  for name, bind in compiled.binds.items()}
    return compiled.string, {name: process for name, process in processors.items() if process is not None}


def _content(event: AuditEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in CONTENT_COLUMNS}


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    """An event's CONTENT_COLUMNS values as `audit_append` reads them (migration 0996's row type): its
    details as JSON text, and its seal input."""
    if fields["occurred_at"].tzinfo is None:  # as UTCDateTime refuses it: its hash would depend on a zone
        raise ValueError("an audit event's occurred_at must be timezone-aware")
    org, details = fields["organisation_id"], fields["details"]
    return {"id": str(fields["id"]), "occurred_at": fields["occurred_at"].astimezone(UTC).isoformat(),
            "organisation_id": None if org is None else str(org), "client_id": fields["client_id"],
            "user_id": fields["user_id"], "action": str(fields["action"]),
            "resource_type": fields["resource_type"], "resource_id": fields["resource_id"],
            "outcome": Outcome(fields["outcome"]).value, "request_id": fields["request_id"],
            "details": None if details is None else json.dumps(details, ensure_ascii=False),
            "seal_input": open_seal_input(*(fields[name] for name in CONTENT_COLUMNS))}


def send_with_commit(session: Session, statement: sa.Executable, parameters: dict[str, Any]) -> None:
    """Execute `statement` (a write returning no rows, whose rowcount nobody reads) at the commit of the
    outermost transaction: on psycopg, when the transaction recorded audit events, in the pipeline of
    their function call and the COMMIT (no round trip of its own); else just before the commit's flush.
    Dropped with a rollback, and with the rollback of a savepoint begun before it was queued."""
    _queue(session, _WITH_COMMIT, (statement, parameters))


def queue_event(session: Session, fields: dict[str, Any]) -> None:
    """An event's values (services.py `record_with_commit`), sealed and inserted at the outermost commit."""
    _queue(session, _EVENTS_WITH_COMMIT, fields)


def has_events_to_commit(session: Session) -> bool:
    return bool(session.info.get(PENDING) or session.info.get(_EVENTS_WITH_COMMIT))


def _queue(session: Session, key: str, item: Any) -> None:
    """`item` under `key` until the outermost commit (`_take`), with the (sub)transaction it came in."""
    session.connection()  # within the session's transaction (begun if none: nothing sent), to end with it
    queued_in = session.get_nested_transaction() or session.get_transaction()
    session.info.setdefault(key, []).append((queued_in, item))


def _take(session: Session, key: str) -> list[Any]:
    return [item for _queued_in, item in session.info.pop(key, [])]


def _send_with_commit_now(session: Session) -> None:
    deferred = _take(session, _WITH_COMMIT)
    if deferred:
        connection = session.connection()
        for statement, parameters in deferred:
            connection.execute(statement, parameters)


@sa_event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: Any) -> None:
    """A savepoint rolled back: what was queued in it (or in a savepoint inside it) goes with it."""
    if not previous_transaction.nested:
        return
    for key in (_WITH_COMMIT, _EVENTS_WITH_COMMIT):
        queued = session.info.get(key)
        if queued:
            session.info[key] = [entry for entry in queued if not _within(entry[0], previous_transaction)]


def _within(transaction: Any, ancestor: Any) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


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
        for key in (PENDING, _WITH_COMMIT, _EVENTS_WITH_COMMIT):
            session.info.pop(key, None)


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
