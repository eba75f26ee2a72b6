"""Engine, one session per request or command, and the declarative Base every model builds on."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import select
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import psycopg
import sqlalchemy as sa
from flask import Flask, g
from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone of its own)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def enum_column(enum: type[StrEnum], name: str) -> sa.Enum:
    """A StrEnum stored as its values in a VARCHAR with a CHECK constraint named `name`."""
    return sa.Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        validate_strings=True,
        length=max(len(e.value) for e in enum),
        values_callable=lambda members: [m.value for m in members],
    )


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class IdMixin:
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)


class RaisedMixin:
    """What the deadlines evaluation raised last on a record that waits: deadline, waiting period, level.

    A cache beside the overdue items (deadlines/evaluate.py): the evaluation skips a wait raised up to
    its level in this period without looking at the items, and finds the records whose move or erasure
    answered their items by this period no longer being the record's own (a small partial index).
    """

    raised_deadline: Mapped[str | None] = mapped_column(sa.String(20))
    raised_period: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raised_level: Mapped[int | None] = mapped_column(sa.Integer)


def answered_index(table: str, period: str) -> sa.Index:
    """The records whose last raised wait was answered (moved on, or erased): few, so a partial index."""
    where = sa.text(f"raised_period IS NOT NULL AND (raised_period <> {period} OR erased_at IS NOT NULL)")
    return sa.Index(f"ix_{table}_raised_answered", "id", postgresql_where=where, sqlite_where=where)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, nullable=False
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; SQLAlchemy emits BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def _create_private_file(path: str) -> None:
    """Create a SQLite file readable by its owner only (0600), as the key folder is; keep an existing one."""
    if path in ("", ":memory:") or path.startswith("file:") or os.path.exists(path):
        return
    # A missing folder or a race with another process: SQLite itself reports or opens it later.
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


# A statement that may run outside a transaction: a plain SELECT, without row locks, advisory locks,
# sequences or settings. Anything else (DML, DDL, SAVEPOINT, SET, a locking SELECT) opens one first.
_PLAIN_READ = re.compile(r"\s*SELECT\b", re.I)
_NOT_PLAIN = re.compile(r"\bFOR\s+(UPDATE|SHARE|NO\s+KEY\s+UPDATE|KEY\s+SHARE)\b|pg_(try_)?advisory"
                        r"|nextval|setval|set_config|\bINTO\b", re.I)
POOL_RECYCLE_SECONDS = 1800
# psycopg keeps a statement's parsed form (placeholders found and converted) only up to this many
# parameters (its own bound is 50); a new referral's INSERT carries some 60 and was parsed anew each time.
WIDE_STATEMENT_PARAMS = 128


@functools.lru_cache(maxsize=4096)  # statements are the engine's compiled, cached strings
def is_plain_read(statement: str) -> bool:
    return bool(_PLAIN_READ.match(statement)) and not _NOT_PLAIN.search(statement)


def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """No ping: a connection whose socket has something to read while idle was closed or terminated by
    the server (pg_terminate_backend, a restart sends its FATAL and EOF), so the pool opens another.
    Then reads begin without a transaction (see _lazy_begin)."""
    if dbapi_connection.closed or _readable(dbapi_connection.fileno()):
        raise exc.DisconnectionError("the server closed this pooled connection")
    dbapi_connection.autocommit = True


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


def _lazy_begin(conn: sa.Connection, cursor: Any, statement: str, _params: Any, context: Any,
                executemany: bool) -> None:
    """Open the transaction at the first statement that needs one: a read-only request sends neither
    BEGIN nor ROLLBACK. Under READ COMMITTED every statement reads its own snapshot, so plain reads
    before the first write see what they would have seen inside the transaction; psycopg's commit and
    rollback send nothing when no transaction was opened. The BEGIN travels with the statement (one
    round trip, see _begin_with) unless the statement is an executemany or a server-side cursor's."""
    dbapi_connection = cursor.connection
    if conn.info.get(_BEGUN) or not _opens_transaction(conn, dbapi_connection):
        return
    server_side = isinstance(cursor, psycopg.ServerCursor)
    if is_plain_read(statement) and not server_side:
        return
    if executemany or server_side or context is None:
        dbapi_connection.execute("BEGIN")
    else:
        context.referral_api_begin = True


def _begin_with(cursor: Any, statement: str, parameters: Any, context: Any) -> bool:
    """BEGIN and the statement that needs it in one pipeline: one round trip instead of two."""
    if not getattr(context, "referral_api_begin", False):
        return False
    context.referral_api_begin = False
    with cursor.connection.pipeline():
        cursor.execute("BEGIN")  # the statement's own cursor: its results are then the statement's
        cursor.execute(statement, parameters)
    return True


def _cache_wide_statements() -> None:
    from psycopg import _queries  # the bound is a module setting of psycopg's, read at each execute

    if getattr(_queries, "MAX_CACHED_STATEMENT_PARAMS", WIDE_STATEMENT_PARAMS) < WIDE_STATEMENT_PARAMS:
        _queries.MAX_CACHED_STATEMENT_PARAMS = WIDE_STATEMENT_PARAMS


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine that behaves on SQLite as on PostgreSQL, whose errors never show a statement's values.
    On PostgreSQL (psycopg): no ping per checkout (a connection the server closed is seen on its
    socket, a broken one is invalidated when it fails, and connections are recycled after
    POOL_RECYCLE_SECONDS), and transactions begin at the first statement that needs one."""
    sa_url = sa.make_url(url)
    # A statement's values never reach an error message (the log of an unexpected error included them).
    kwargs.setdefault("hide_parameters", True)
    if sa_url.get_backend_name() == "sqlite":
        _create_private_file(sa_url.database or "")
        engine = sa.create_engine(sa_url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    kwargs.setdefault("pool_recycle", POOL_RECYCLE_SECONDS)
    kwargs.setdefault("connect_args", {"connect_timeout": 5})
    engine = sa.create_engine(sa_url, **kwargs)
    if engine.dialect.driver == "psycopg":
        _cache_wide_statements()
        event.listen(engine, "checkout", _checkout)
        event.listen(engine, "before_cursor_execute", _lazy_begin)
        event.listen(engine, "do_execute", _begin_with)
    return engine


class Database:
    """The app's engine and session factory; tests may swap the factory for one bound to a connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessionmaker: sessionmaker[Session] = sessionmaker(bind=self.engine, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def init_app(self, app: Flask) -> None:
        app.extensions["referral_api.db"] = self
        app.teardown_appcontext(_remove_session)


def database(app: Flask | None = None) -> Database:
    from flask import current_app

    return (app or current_app).extensions["referral_api.db"]


def get_session() -> Session:
    """The session of the current request or command, created on first use."""
    session = g.get("_db_session")
    if session is None:
        session = database().sessionmaker()
        g._db_session = session
    return session


def _remove_session(_exc: BaseException | None) -> None:
    session = g.pop("_db_session", None)
    if session is not None:
        session.close()


UNIT_OF_WORK = "referral_api.unit_of_work"


class UnitOfWork:
    """One transaction around a request's steps: inside it a service's commit is a checkpoint, and the
    unit commits once at its end (an idempotency key and the change it answers commit together)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._savepoint: Any = None

    def __enter__(self) -> UnitOfWork:
        if UNIT_OF_WORK in self.session.info:
            raise RuntimeError("a unit of work is already open on this session")
        self.session.info[UNIT_OF_WORK] = self
        return self

    def __exit__(self, *_exc: object) -> None:
        self.session.info.pop(UNIT_OF_WORK, None)

    def checkpoint(self) -> None:
        """What a service would commit: flushed now (a version or unique conflict raises inside the
        service that maps it to a 409), kept if the request later fails (an audited denial)."""
        self.session.flush()
        self._savepoint = self.session.begin_nested()

    def keep_checkpointed(self) -> bool:
        """After a failure: undo what followed the last checkpoint; True when checkpointed work remains."""
        if self._savepoint is None or not self._savepoint.is_active:
            self.session.rollback()
            return False
        self._savepoint.rollback()
        return True


def commit(session: Session) -> None:
    """End a service's work: commit, or inside a unit of work only checkpoint (the unit commits)."""
    unit = session.info.get(UNIT_OF_WORK)
    if unit is None:
        session.commit()
    else:
        unit.checkpoint()


def commit_last(session: Session) -> None:
    """End a service whose commit is its very last step: commit, or inside a unit of work only flush.

    No checkpoint (a SAVEPOINT and its release, two round trips): nothing of the service follows to be
    undone apart from it, and if the request fails later the unit rolls the whole change back."""
    if UNIT_OF_WORK in session.info:
        session.flush()
    else:
        session.commit()


def commit_at_end(session: Session) -> None:
    """End a service whose last steps may wait for the commit: commit, or inside a unit of work
    nothing (the unit's commit flushes what is still pending; an audit entry still pending then is
    inserted sealed when the chain's head is free, with no UPDATE: see audit/services.py)."""
    if UNIT_OF_WORK not in session.info:
        session.commit()


@contextlib.contextmanager
def pipelined(session: Session) -> Iterator[None]:
    """Send the block's statements without waiting for each answer (psycopg's pipeline mode): writes
    whose results nobody reads travel in one round trip. Only statements that return no rows belong
    in the block (not a SELECT, not an INSERT with RETURNING). A failure of any of them (a unique key
    taken) raises at the end of the block as SQLAlchemy's error of its kind. Elsewhere a plain block."""
    connection = session.connection()
    if connection.dialect.driver != "psycopg":
        yield
        return
    dbapi = connection.dialect.loaded_dbapi
    dbapi_connection = connection.connection.dbapi_connection
    try:
        with dbapi_connection.pipeline():
            if _opens_transaction(connection, dbapi_connection):
                # The block writes: its transaction's BEGIN goes first in the same round trip (the
                # lazy BEGIN of its first statement would be a nested pipeline: a round trip more).
                dbapi_connection.execute("BEGIN")
                connection.info[_BEGUN] = True
            try:
                yield
            finally:
                connection.info.pop(_BEGUN, None)
    except dbapi.Error as error:
        raise sa.exc.DBAPIError.instance(None, None, error, dbapi.Error) from error


_BEGUN = "referral_api.begun_in_pipeline"  # connection.info: BEGIN queued, not yet answered


def nothing_begun(connection: sa.Connection) -> bool:
    """psycopg: whether this connection's transaction has sent nothing yet (its lazy BEGIN is still to
    come), so that one statement sent now is a transaction of its own."""
    return not connection.info.get(_BEGUN) and not connection.in_nested_transaction() and \
        _opens_transaction(connection, connection.connection.dbapi_connection)


def _opens_transaction(connection: sa.Connection, dbapi_connection: Any) -> bool:
    """Whether the lazy BEGIN (see _lazy_begin) is still to be sent on this connection."""
    return (dbapi_connection.autocommit
            and dbapi_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            and connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT")
