"""`audit.record_with_commit`: an event nothing reads before the commit, kept as values (no object of
the session) and sent with the commit; sealed after the session's own events of the same commit, in
the order recorded, dropped with a rollback or the savepoint it was recorded in. On PostgreSQL it
travels in the `audit_append()` call with the COMMIT, and the writes queued by `send_with_commit` are
sent by psycopg itself (compiled once, their values through their types' bind processors)."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from referral_api import audit
from referral_api.audit import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.db import UTCDateTime, make_engine
from tests.conftest import round_trips

ACTOR = SimpleNamespace(client_id="cl_with_commit", organisation_id=None, user_id=None)


def _recorded(session, n: int, *, with_commit: bool) -> None:
    write = audit.record_with_commit if with_commit else audit.record
    write(session, actor=ACTOR, action=AuditAction.AUTH_TOKEN_ISSUE, resource_type="token",
          resource_id=f"t{n}", details={"n": n})


def _chain(session) -> list[tuple[int, str]]:
    rows = session.execute(sa.select(AuditEvent.seq, AuditEvent.resource_id)
                           .where(AuditEvent.client_id == ACTOR.client_id).order_by(AuditEvent.seq))
    return [tuple(row) for row in rows]


def test_events_recorded_with_the_commit_are_sealed_after_the_sessions_own(session):
    """After the session's events of the same commit, in the order recorded (on both backends); not in
    the session before the commit."""
    _recorded(session, 1, with_commit=True)
    _recorded(session, 2, with_commit=False)
    _recorded(session, 3, with_commit=True)
    _recorded(session, 4, with_commit=False)
    assert [r for _seq, r in _chain(session)] == ["t2", "t4"]  # autoflushed: the session's own only
    session.commit()
    chain = _chain(session)
    assert [r for _seq, r in chain] == ["t2", "t4", "t1", "t3"]
    seqs = [seq for seq, _r in chain]
    assert None not in seqs and seqs == sorted(seqs)
    result = audit.verify(session)
    assert result.ok and result.unsealed == 0


def test_an_event_recorded_with_the_commit_goes_with_a_rollback(session):
    """A rollback drops it; so does the rollback of a savepoint begun before it (or around the savepoint
    it was recorded in); a released savepoint keeps it."""
    _recorded(session, 1, with_commit=True)
    session.rollback()
    undone = session.begin_nested()
    _recorded(session, 2, with_commit=True)
    with session.begin_nested():
        _recorded(session, 3, with_commit=True)
    undone.rollback()
    with session.begin_nested():
        _recorded(session, 4, with_commit=True)
    _recorded(session, 5, with_commit=True)
    session.commit()
    assert [r for _seq, r in _chain(session)] == ["t4", "t5"]
    assert audit.verify(session).ok


def test_a_token_event_travels_with_the_commit_in_one_round_trip(pg_database):
    """PostgreSQL: the queued write (by psycopg itself), the event's function call and the COMMIT in
    one round trip; the event is inserted sealed, and the session holds no object of it."""
    url, db = pg_database
    probe = sa.Table("with_commit_token", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True),
                     sa.Column("at", UTCDateTime(), nullable=False))
    engine = make_engine(url)
    probe.create(engine)
    engine.dispose()
    through_sqlalchemy: list[str] = []

    def seen(_conn, _cursor, statement, *_rest):
        through_sqlalchemy.append(statement)

    with db.sessionmaker() as writer:
        sa.event.listen(db.engine, "before_cursor_execute", seen)
        try:
            with round_trips(writer) as trips:
                audit.send_with_commit(writer, probe.insert(), {"n": 1, "at": datetime.fromisoformat(
                    "2026-11-29T12:00:00+08:00")})
                _recorded(writer, 1, with_commit=True)
                writer.commit()
        finally:
            sa.event.remove(db.engine, "before_cursor_execute", seen)
        assert [s.split(" (")[0].split(" FROM ")[-1] for s in trips.statements] == [
            "BEGIN", "INSERT INTO with_commit_token", "audit_append($1::json, $2::uuid[])", "COMMIT"]
        assert trips.round_trips == 1
        assert not [s for s in through_sqlalchemy if "with_commit_token" in s]  # psycopg sent it
        assert not [o for o in writer.identity_map.values() if isinstance(o, AuditEvent)]
        assert _chain(writer) == [(1, "t1")]
        # stored through UTCDateTime's bind processor: the same instant, in UTC
        assert writer.scalar(sa.select(probe.c.at)) == datetime.fromisoformat("2026-11-29T04:00:00+00:00")


def test_a_queued_write_keeps_its_types_checks_and_defaults(pg_database):
    """A naive datetime is refused as UTCDateTime refuses it, and nothing is committed; a statement with
    a column default to compute goes through SQLAlchemy, which computes it."""
    url, db = pg_database
    probe = sa.Table("with_commit_checks", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True),
                     sa.Column("at", UTCDateTime(), nullable=True), sa.Column("kind", sa.String(10),
                                                                               default=lambda: "computed"))
    engine = make_engine(url)
    probe.create(engine)
    engine.dispose()
    with db.sessionmaker() as writer:
        naive = {"n": 1, "at": datetime(2026, 11, 29, 12), "kind": "given"}  # no default: by psycopg
        audit.send_with_commit(writer, probe.insert(), naive)
        _recorded(writer, 1, with_commit=True)
        with pytest.raises(ValueError, match="naive datetimes"):
            writer.commit()
        writer.rollback()
        assert writer.scalars(sa.select(probe.c.n)).all() == [] and _chain(writer) == []
        audit.send_with_commit(writer, probe.insert(), {"n": 2})
        _recorded(writer, 2, with_commit=True)
        writer.commit()
        assert writer.execute(sa.select(probe.c.n, probe.c.kind)).all() == [(2, "computed")]
        assert [r for _seq, r in _chain(writer)] == ["t2"]


def test_only_a_statement_whose_sql_is_its_parameters_is_sent_by_the_driver():
    """`_send` compiles a queued write for psycopg only when its SQL names each parameter as given;
    otherwise (a column default to compute, an escaped or expanding bind name) SQLAlchemy executes it."""
    from sqlalchemy.dialects import postgresql

    from referral_api.audit.sealing import _driver_sql

    dialect = postgresql.psycopg.dialect()
    table = sa.Table("driver_sql", sa.MetaData(), sa.Column("n", sa.Integer), sa.Column("a.b", sa.Integer),
                     sa.Column("at", UTCDateTime()), sa.Column("kind", sa.String(10), default="computed"))
    sql, processors = _driver_sql(dialect, table.insert(), {"n": 1, "at": None, "kind": "k"})
    assert sql.startswith("INSERT INTO driver_sql (n, at, kind) VALUES (%(n)s")
    assert set(processors) == {"at"}  # UTCDateTime's; psycopg adapts the others itself
    assert _driver_sql(dialect, table.insert(), {"n": 1}) is None  # kind's default to compute
    assert _driver_sql(dialect, table.insert(), {"n": 1, "a.b": 2, "kind": "k"}) is None  # escaped name
    expanding = table.delete().where(table.c.n.in_(sa.bindparam("n", expanding=True)))
    assert _driver_sql(dialect, expanding, {"n": [1, 2]}) is None


def _probe(url, name):
    probe = sa.Table(name, sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True),
                     sa.Column("at", UTCDateTime(), nullable=False))
    engine = make_engine(url)
    probe.create(engine)
    engine.dispose()
    return probe


def test_a_write_and_its_events_that_are_the_whole_transaction_go_as_one_statement(pg_database):
    """PostgreSQL, commit_pipelined with nothing sent before: the queued write and `audit_append()` as one
    statement, a transaction of its own (no BEGIN, no COMMIT); the event is sealed, the row committed."""
    url, db = pg_database
    probe = _probe(url, "with_commit_alone")
    with db.sessionmaker() as writer:
        with round_trips(writer) as trips:
            audit.send_with_commit(writer, probe.insert(), {"n": 1, "at": datetime.fromisoformat(
                "2026-11-29T12:00:00+08:00")})
            _recorded(writer, 1, with_commit=True)
            audit.commit_pipelined(writer)
        assert len(trips.statements) == 1 and trips.round_trips == 1
        assert trips.statements[0].startswith("WITH written AS (INSERT INTO with_commit_alone")
        assert "audit_append(" in trips.statements[0]
    with db.sessionmaker() as reader:  # committed: another session sees both
        assert reader.scalar(sa.select(probe.c.at)) == datetime.fromisoformat("2026-11-29T04:00:00+00:00")
        assert [seq is not None for seq, _r in _chain(reader)] == [True]
        assert audit.verify(reader).ok


def test_a_refused_write_of_one_statement_leaves_neither_the_row_nor_the_event(pg_database):
    url, db = pg_database
    probe = _probe(url, "with_commit_alone_refused")
    at = datetime.fromisoformat("2026-11-29T12:00:00+08:00")
    with db.sessionmaker() as writer:
        audit.send_with_commit(writer, probe.insert(), {"n": 1, "at": at})
        _recorded(writer, 1, with_commit=True)
        audit.commit_pipelined(writer)
        with round_trips(writer) as trips:
            audit.send_with_commit(writer, probe.insert(), {"n": 1, "at": at})  # the same key again
            _recorded(writer, 2, with_commit=True)
            with pytest.raises(sa.exc.IntegrityError):
                audit.commit_pipelined(writer)
        assert len(trips.statements) == 1 and trips.statements[0].startswith("WITH written AS (INSERT")
        writer.rollback()
    with db.sessionmaker() as reader:
        assert reader.scalar(sa.select(sa.func.count()).select_from(probe)) == 1
        assert [r for _seq, r in _chain(reader)] == ["t1"]


def test_a_transaction_that_wrote_before_keeps_its_begin_and_commit(pg_database):
    """Something sent earlier in the transaction: the write, the call and the COMMIT in its pipeline."""
    url, db = pg_database
    probe = _probe(url, "with_commit_begun")
    at = datetime.fromisoformat("2026-11-29T12:00:00+08:00")
    with db.sessionmaker() as writer:
        writer.execute(probe.insert(), {"n": 1, "at": at})  # BEGIN goes with it
        with round_trips(writer) as trips:
            audit.send_with_commit(writer, probe.insert(), {"n": 2, "at": at})
            _recorded(writer, 1, with_commit=True)
            audit.commit_pipelined(writer)
        assert [s.split(" (")[0].split(" FROM ")[-1] for s in trips.statements] == [
            "INSERT INTO with_commit_begun", "audit_append($1::json, $2::uuid[])", "COMMIT"]
    with db.sessionmaker() as reader:
        assert reader.scalar(sa.select(sa.func.count()).select_from(probe)) == 2
        assert audit.verify(reader).ok
