"""Writers of the audit trail do not wait on each other (PostgreSQL): eight transactions append at the
same time with no lock wait, a commit never waits for the chain head, and whatever was left unsealed is
sealed later into one linear, verified chain. Timing-free: a writer that waited would never reach
the barrier (the barrier's timeout turns that into a failure)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import uuid
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from referral_api import audit
from referral_api.audit import AuditAction
from referral_api.audit.models import CANONICAL_COLUMNS, GENESIS_HASH, AuditEvent, canonical
from referral_api.audit.sealing import CHAIN_LOCK
from referral_api.db import make_engine, utcnow
from tests.conftest import round_trips

WRITERS = 8

# Sessions waiting on a lock of any kind in this database, and locks asked for but not granted.
WAITING = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock')
     + (SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database
        WHERE d.datname = current_database() AND NOT l.granted)
"""


def _record(session, n: int) -> None:
    audit.record(session, actor=SimpleNamespace(client_id=f"w{n}"), action=AuditAction.AUTH_TOKEN_ISSUE,
                 resource_type="token", details={"writer": n})


def test_eight_writers_append_at_once_and_none_waits(pg_database):
    url, db = pg_database
    engine = make_engine(url, pool_size=WRITERS + 1, max_overflow=0)
    sessions = sessionmaker(bind=engine)
    appended = threading.Barrier(WRITERS + 1, timeout=30)
    release = threading.Barrier(WRITERS + 1, timeout=30)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            with sessions() as s:
                _record(s, n)
                s.flush()  # the INSERT is sent: this transaction holds its row, uncommitted
                appended.wait()  # all eight transactions have appended and are open together
                release.wait()
                s.commit()
        except BaseException as exc:  # noqa: BLE001  (reported by the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    try:
        appended.wait()
        with engine.connect() as conn:
            waiting = conn.scalar(sa.text(WAITING))
            open_writers = conn.scalar(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'idle in transaction'"))
        release.wait()
    finally:
        for t in threads:
            t.join(timeout=60)
        engine.dispose()
    assert not errors, errors
    assert waiting == 0 and open_writers == WRITERS
    with db.sessionmaker() as s:
        result = audit.verify(s)
        seqs = s.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)).all()
    assert result.ok and result.checked == WRITERS and result.unsealed == 0, result
    assert seqs == list(range(1, WRITERS + 1))


@contextlib.contextmanager
def _head_held(url: str):
    """A sealer at work: another connection holds the chain head's lock until the block ends."""
    engine = make_engine(url)
    try:
        with engine.connect() as holder:
            holder.execute(sa.select(sa.func.pg_advisory_lock(CHAIN_LOCK)))
            yield
            holder.execute(sa.select(sa.func.pg_advisory_unlock(CHAIN_LOCK)))
            holder.commit()
    finally:
        engine.dispose()


@contextlib.contextmanager
def _sent(session):
    """The statements the block sends through SQLAlchemy: (their words, whether in pipeline mode)."""
    sent: list[tuple[list[str], bool]] = []

    def seen(_conn, cursor, statement, *_rest):
        sent.append((statement.split(), cursor.connection.pgconn.pipeline_status != 0))

    sa.event.listen(session.get_bind(), "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        sa.event.remove(session.get_bind(), "before_cursor_execute", seen)


@pytest.mark.parametrize("commit", [Session.commit, audit.commit_pipelined], ids=["commit", "pipelined"])
def test_a_commit_does_not_wait_for_a_busy_head_and_is_sealed_later(pg_database, commit):
    url, db = pg_database
    with db.sessionmaker() as writer:
        with _head_held(url):
            # A commit that waited for the head would fail here instead of hanging.
            writer.execute(sa.text("SET lock_timeout = '1s'"))
            _record(writer, 1)
            commit(writer)
            with db.sessionmaker() as s:  # committed, not sealed yet
                assert s.execute(sa.select(AuditEvent.seq)).all() == [(None,)]
        _record(writer, 2)  # the next commit that gets the head seals the first one too
        commit(writer)
    with db.sessionmaker() as s:
        rows = s.execute(sa.select(AuditEvent.seq, AuditEvent.details).order_by(AuditEvent.seq)).all()
        result = audit.verify(s)
    assert [(seq, d["writer"]) for seq, d in rows] == [(1, 1), (2, 2)]
    assert result.ok and result.checked == 2 and result.unsealed == 0


def test_verify_reports_unsealed_events_and_seal_seals_them(pg_database):
    url, db = pg_database
    engine = make_engine(url)
    try:
        with engine.connect() as holder, db.sessionmaker() as writer:
            _record(writer, 1)
            writer.commit()
            holder.execute(sa.select(sa.func.pg_advisory_lock(CHAIN_LOCK)))
            _record(writer, 2)
            writer.commit()
            with db.sessionmaker() as s:
                # a read-only walk checks the sealed chain and counts the unsealed event
                result = audit.verify(s, seal=False)
                assert (result.ok, result.checked, result.unsealed) == (True, 1, 1), result
                s.execute(sa.text("SET lock_timeout = '1s'"))
                # sealing waits for the head (here: until the lock timeout)
                with pytest.raises(sa.exc.OperationalError):
                    audit.verify(s)
            holder.execute(sa.select(sa.func.pg_advisory_unlock(CHAIN_LOCK)))
            holder.commit()
        with db.sessionmaker() as s:
            assert audit.seal_pending(s) == 1
            result = audit.verify(s)
        assert result.ok and result.checked == 2 and result.unsealed == 0
    finally:
        engine.dispose()


def test_the_trigger_lets_only_a_seal_through(pg_database):
    url, db = pg_database
    engine = make_engine(url)
    events = AuditEvent.__table__
    try:
        with engine.connect() as holder, db.sessionmaker() as writer:
            holder.execute(sa.select(sa.func.pg_advisory_lock(CHAIN_LOCK)))
            _record(writer, 1)
            writer.commit()  # unsealed: the head was busy
            holder.execute(sa.select(sa.func.pg_advisory_unlock(CHAIN_LOCK)))
            holder.commit()
            seal = {"seq": 1, "prev_hash": "0" * 64, "hash": "a" * 64}
            for change in ({**seal, "outcome": "denied"}, {**seal, "details": {"writer": 2}},
                           {"seq": 1}, {"client_id": "someone"}, {"seal_input": None}):
                with pytest.raises(sa.exc.DBAPIError, match="append-only"), writer.begin_nested():
                    writer.execute(sa.update(events).where(events.c.seq.is_(None)).values(**change))
            assert audit.seal_pending(writer) == 1
            sealed = {"seq": 1, "prev_hash": "0" * 64, "hash": "b" * 64}
            with pytest.raises(sa.exc.DBAPIError, match="append-only"), writer.begin_nested():
                writer.execute(sa.update(events).values(**sealed))  # a seal is set once
        with db.sessionmaker() as s:
            assert audit.verify(s).checked == 1
    finally:
        engine.dispose()


def test_commit_pipelined_seals_and_commits_what_it_sends(pg_database):
    """The token endpoint's commit: head read with the lock, INSERTs and COMMIT pipelined."""
    _url, db = pg_database
    with db.sessionmaker() as writer:
        _record(writer, 1)
        _record(writer, 2)
        audit.commit_pipelined(writer)
    with db.sessionmaker() as s:  # committed: another session sees both, sealed in order
        rows = s.execute(sa.select(AuditEvent.seq, AuditEvent.details).order_by(AuditEvent.seq)).all()
        assert [(seq, d["writer"]) for seq, d in rows] == [(1, 1), (2, 2)]
        result = audit.verify(s)
    assert result.ok and result.checked == 2 and result.unsealed == 0


def test_commit_pipelined_failure_raises_and_commits_nothing(pg_database):
    _url, db = pg_database
    with db.sessionmaker() as writer:
        first = audit.record(writer, actor=None, action=AuditAction.AUTH_TOKEN_ISSUE, resource_type="token")
        audit.commit_pipelined(writer)
        writer.expunge(first)
        _record(writer, 2)
        clash = audit.record(writer, actor=None, action=AuditAction.AUTH_TOKEN_ISSUE, resource_type="token")
        clash.id = first.id  # a unique key taken: the pipelined INSERT fails
        with pytest.raises(sa.exc.IntegrityError):
            audit.commit_pipelined(writer)
        writer.rollback()
        _record(writer, 3)
        audit.commit_pipelined(writer)  # the session goes on
    with db.sessionmaker() as s:
        rows = s.execute(sa.select(AuditEvent.seq, AuditEvent.details).order_by(AuditEvent.seq)).all()
        result = audit.verify(s)
    assert [(seq, (d or {}).get("writer")) for seq, d in rows] == [(1, None), (2, 3)]
    assert result.ok and result.checked == 2


def test_the_next_commit_seals_waiting_events_without_loading_them(pg_database):
    """Events left unsealed are sealed by the database (audit_append, from their stored seal input) in
    the next commit's one round trip: nothing read through the ORM, and an instance of one in the
    session shows its seal without a reload."""
    url, db = pg_database
    with db.sessionmaker() as writer:
        with _head_held(url):
            waiting = audit.record(writer, actor=None, action=AuditAction.AUTH_TOKEN_ISSUE,
                                   resource_type="token")
            audit.commit_pipelined(writer)
        with _sent(writer) as sent, round_trips(writer) as trips:
            _record(writer, 2)
            audit.commit_pipelined(writer)
        assert sent == [] and trips.round_trips == 1  # the new event, the waiting one's seal and the COMMIT
        assert (waiting.seq, waiting.prev_hash) == (1, GENESIS_HASH)
    with db.sessionmaker() as s:
        stored = s.execute(sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq)).all()
        result = audit.verify(s)
    assert stored[0] == (1, waiting.hash) and [seq for seq, _ in stored] == [1, 2]
    assert result.ok and result.checked == 2 and result.unsealed == 0


def test_a_commit_whose_last_writes_are_its_events_sends_them_with_the_commit(pg_database):
    """A transaction with nothing else left to flush: its sealed events' INSERT (Core, no unit of
    work) travels in the pipeline with the COMMIT; the events are then persistent as after a flush."""
    _url, db = pg_database
    with db.sessionmaker() as writer:
        with _sent(writer) as sent, round_trips(writer) as trips:
            events = [audit.record(writer, actor=None, action=AuditAction.AUTH_TOKEN_ISSUE,
                                   resource_type="token", details={"n": n}) for n in (1, 2)]
            writer.commit()
        # both events handed to audit_append (no unit of work), pipelined with the COMMIT
        assert sent == [] and trips.round_trips == 1
        assert all(sa.inspect(e).persistent and not sa.inspect(e).modified for e in events)
        assert [e.seq for e in events] == [1, 2]
    with db.sessionmaker() as s:
        result = audit.verify(s)
    assert result.ok and result.checked == 2 and result.unsealed == 0


def _probe(url: str, name: str) -> sa.Table:
    """A table of its own for statements sent with a commit (created committed)."""
    probe = sa.Table(name, sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
    engine = make_engine(url)
    probe.create(engine)
    engine.dispose()
    return probe


def test_a_statement_sent_with_the_commit_travels_with_it_and_goes_with_a_rollback(pg_database):
    """`audit.send_with_commit`: the write goes in the pipeline of the events' INSERT and the COMMIT
    (idempotency's stored answer uses it); after a rollback it is not sent."""
    url, db = pg_database
    probe = _probe(url, "with_commit_probe")
    with db.sessionmaker() as writer:
        audit.send_with_commit(writer, probe.insert(), {"n": 1})
        writer.rollback()  # gone with the transaction
        with round_trips(writer) as trips:
            _record(writer, 1)
            audit.send_with_commit(writer, probe.insert(), {"n": 2})
            writer.commit()
        # sent by psycopg itself (compiled once), between BEGIN and the events' function call
        assert [s.split(" (")[0] for s in trips.statements] == [
            "BEGIN", "INSERT INTO with_commit_probe", "SELECT sealed_id, sealed_seq, sealed_prev_hash, "
            "sealed_hash FROM audit_append($1::json, $2::uuid[])", "COMMIT"]
        assert trips.round_trips == 1  # with the audit event and the COMMIT
        assert writer.scalars(sa.select(probe.c.n)).all() == [2]


def test_an_event_without_a_seal_input_is_left_to_audit_seal(pg_database):
    """An event left unsealed by a version before the database sealed (no seal input) does not stop
    the commits after it; `audit seal` seals it from its columns."""
    url, db = pg_database
    events = AuditEvent.__table__
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(events.insert().values(
                id=uuid.uuid4(), occurred_at=utcnow(), action=AuditAction.AUTH_TOKEN_ISSUE.value,
                resource_type="token", outcome="success", details={"writer": 0}))
    finally:
        engine.dispose()
    with db.sessionmaker() as writer:
        _record(writer, 1)
        writer.commit()
    with db.sessionmaker() as s:
        assert audit.verify(s, seal=False).unsealed == 1
        assert audit.seal_pending(s) == 1
        rows = s.execute(sa.select(AuditEvent.seq, AuditEvent.details).order_by(AuditEvent.seq)).all()
        result = audit.verify(s)
    assert [(seq, d["writer"]) for seq, d in rows] == [(1, 1), (2, 0)]
    assert result.ok and result.checked == 2 and result.unsealed == 0


def test_a_seal_of_the_three_columns_clears_the_seal_input(pg_database):
    """A sealer that sets only seq, prev_hash and hash (the Python sealer; one of an older version during
    a rolling upgrade; the app role, which has no privilege on the column) leaves no seal input behind:
    the trigger clears it."""
    url, db = pg_database
    events = AuditEvent.__table__
    with db.sessionmaker() as writer:
        with _head_held(url):
            event = audit.record(writer, actor=None, action=AuditAction.AUTH_TOKEN_ISSUE,
                                 resource_type="token")
            writer.commit()
        assert writer.scalar(sa.select(events.c.seal_input).where(events.c.id == event.id)) is not None
        fields = (getattr(event, name) for name in CANONICAL_COLUMNS[1:-1])
        digest = hashlib.sha256(canonical(1, *fields, GENESIS_HASH)).hexdigest()
        writer.execute(sa.update(events).where(events.c.id == event.id).values(
            seq=1, prev_hash=GENESIS_HASH, hash=digest))
        writer.commit()
        assert writer.scalar(sa.select(events.c.seal_input).where(events.c.id == event.id)) is None
    with db.sessionmaker() as s:
        result = audit.verify(s)
    assert result.ok and result.checked == 1 and result.unsealed == 0


def test_a_statement_queued_in_a_savepoint_goes_with_its_rollback(pg_database):
    """`audit.send_with_commit` inside a savepoint: dropped when the savepoint rolls back (a unit of
    work's checkpoint undone), kept when it is released; all sent at the outermost commit."""
    url, db = pg_database
    probe = _probe(url, "savepoint_probe")
    with db.sessionmaker() as writer:
        audit.send_with_commit(writer, probe.insert(), {"n": 1})
        undone = writer.begin_nested()
        audit.send_with_commit(writer, probe.insert(), {"n": 2})
        with writer.begin_nested():
            audit.send_with_commit(writer, probe.insert(), {"n": 3})  # inside the one undone
        undone.rollback()
        with writer.begin_nested():
            audit.send_with_commit(writer, probe.insert(), {"n": 4})
        assert writer.scalars(sa.select(probe.c.n)).all() == []  # nothing sent before the commit
        _record(writer, 1)
        writer.commit()
        assert writer.scalars(sa.select(probe.c.n).order_by(probe.c.n)).all() == [1, 4]
