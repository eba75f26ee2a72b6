"""PostgreSQL connections without a ping per checkout, and transactions that begin when needed.

- A pooled connection whose backend was terminated (pg_terminate_backend, as a restart or an
  administrator would) is replaced at checkout: the next request succeeds.
- A read sends no BEGIN (and so closing the session sends no ROLLBACK); the first write, a locking
  read or a savepoint opens the transaction first, and what it wrote commits or rolls back as one.
"""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from referral_api.db import database, is_plain_read, make_engine, pipelined
from referral_api.organisations.models import Organisation, OrganisationKind
from tests.conftest import round_trips

pytestmark = pytest.mark.postgres_only
IDLE, INTRANS = psycopg.pq.TransactionStatus.IDLE, psycopg.pq.TransactionStatus.INTRANS


@pytest.fixture
def engine(base_app, backend):
    engine = make_engine(database(base_app).url, pool_size=2, max_overflow=0)
    yield engine
    engine.dispose()


def _status(session: Session) -> psycopg.pq.TransactionStatus:
    return session.connection().connection.dbapi_connection.info.transaction_status


def _terminate(url: str, pids: set[int]) -> None:
    admin = make_engine(url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        for pid in pids:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        conn.commit()
        deadline = time.monotonic() + 10
        while conn.scalar(sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:p)"),
                          {"p": list(pids)}):
            assert time.monotonic() < deadline, "the terminated backends did not go away"
            time.sleep(0.05)
    admin.dispose()


def test_a_terminated_backend_is_replaced_at_checkout(engine):
    with engine.connect() as a, engine.connect() as b:  # both connections of the pool
        pids = {a.scalar(sa.text("SELECT pg_backend_pid()")), b.scalar(sa.text("SELECT pg_backend_pid()"))}
    _terminate(engine.url.render_as_string(hide_password=False), pids)
    for _ in range(3):
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT pg_backend_pid()")) not in pids


def test_a_request_after_the_backends_were_terminated_succeeds(base_app, backend):
    db = database(base_app)
    client = base_app.test_client()
    assert client.get("/readyz").status_code == 200
    pool_size = db.engine.pool.checkedin()
    held = [db.engine.connect() for _ in range(max(pool_size, 1))]
    pids = {conn.scalar(sa.text("SELECT pg_backend_pid()")) for conn in held}
    for conn in held:
        conn.close()
    _terminate(db.url, pids)
    for _ in range(len(pids) + 1):
        response = client.get("/readyz")
        assert response.status_code == 200, response.get_data(as_text=True)


def test_a_read_opens_no_transaction_and_a_write_opens_one(engine):
    with Session(engine) as session:
        session.scalar(sa.select(sa.func.count()).select_from(Organisation))
        assert _status(session) == IDLE  # no BEGIN was sent, so closing sends no ROLLBACK
        session.scalars(sa.select(Organisation).limit(1).with_for_update()).all()
        assert _status(session) == INTRANS  # a locking read needs the transaction
        session.rollback()
        assert _status(session) == IDLE


def test_writes_after_reads_commit_or_roll_back_as_one(engine):
    names = [f"Lazy begin {uuid.uuid4().hex[:8]}", f"Lazy begin {uuid.uuid4().hex[:8]}"]
    with Session(engine) as session:
        session.scalar(sa.select(sa.func.count()).select_from(Organisation))
        session.add(Organisation(name=names[0], kind=OrganisationKind.NGO, country="MN"))
        session.flush()
        assert _status(session) == INTRANS
        session.add(Organisation(name=names[1], kind=OrganisationKind.NGO, country="MN"))
        session.flush()
        session.rollback()
    with Session(engine) as session:
        assert session.scalar(sa.select(sa.func.count()).where(Organisation.name.in_(names))) == 0
        session.add_all([Organisation(name=n, kind=OrganisationKind.NGO, country="MN") for n in names])
        session.commit()
        assert _status(session) == IDLE
        assert session.scalar(sa.select(sa.func.count()).where(Organisation.name.in_(names))) == 2
        session.execute(sa.delete(Organisation).where(Organisation.name.in_(names)))
        session.commit()


def test_a_savepoint_and_an_advisory_lock_open_the_transaction(engine):
    with Session(engine) as session:
        with session.begin_nested():
            assert _status(session) == INTRANS
        session.rollback()
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(4242)))
        assert _status(session) == INTRANS
        session.rollback()


def test_what_counts_as_a_plain_read():
    assert is_plain_read("SELECT cases.id FROM cases WHERE cases.id = %(id)s")
    assert is_plain_read("  select 1")
    for statement in ("INSERT INTO t VALUES (1)", "UPDATE t SET a = 1", "DELETE FROM t", "SAVEPOINT s",
                      "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "SET LOCAL lock_timeout = 1",
                      "SELECT * FROM t FOR UPDATE", "SELECT * FROM t FOR NO KEY UPDATE SKIP LOCKED",
                      "SELECT * FROM t FOR SHARE", "SELECT pg_advisory_xact_lock(1)",
                      "SELECT pg_try_advisory_xact_lock(1)", "SELECT nextval('s')",
                      "SELECT set_config('a', 'b', true)", "SELECT * INTO t2 FROM t"):
        assert not is_plain_read(statement), statement


def test_a_first_write_that_fails_raises_at_once_and_rolls_back(engine):
    with Session(engine) as session:
        with pytest.raises(sa.exc.ProgrammingError, match="no_such_table"):
            session.execute(sa.text("INSERT INTO no_such_table VALUES (1)"))  # BEGIN travels with it
        session.rollback()
        assert _status(session) == IDLE
        assert session.scalar(sa.text("SELECT 1")) == 1


def test_a_pipelined_block_sends_its_begin_with_its_writes(engine):
    """db.pipelined() on a connection with no transaction: BEGIN and the block's writes in one round
    trip (the first write's lazy BEGIN would be a nested pipeline, one more), as one transaction."""
    names = [f"Pipelined {uuid.uuid4().hex[:8]}" for _ in range(2)]
    table = Organisation.__table__
    with Session(engine) as session:
        session.scalar(sa.select(sa.func.count()).select_from(Organisation))
        assert _status(session) == IDLE
        with round_trips(session) as trips, pipelined(session):
            for name in names:
                session.execute(table.insert().values(id=uuid.uuid4(), name=name, kind="ngo", country="MN"))
        assert trips.round_trips == 1 and _status(session) == INTRANS
        session.rollback()
        assert session.scalar(sa.select(sa.func.count()).where(Organisation.name.in_(names))) == 0
