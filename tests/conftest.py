"""Test fixtures: the app on SQLite and, when TEST_DATABASE_URL is set, on PostgreSQL too.

Each test runs in an outer transaction that is rolled back; services may commit freely because the
session joins it with SAVEPOINTs (`join_transaction_mode="create_savepoint"`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bench.scratch import new_database
from referral_api import create_app, dbmigrate
from referral_api.db import Database, database

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
BACKENDS = ["sqlite", "postgresql"]


def pytest_collection_modifyitems(config, items):
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        if backend == "sqlite" and item.get_closest_marker("postgres_only"):
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (locks, triggers or concurrency)"))


def _pg_url() -> str:
    url = PG_URL
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@contextmanager
def throwaway_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A new, empty database of `backend`, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'empty-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    with new_database(_pg_url(), f"referral_tmp_{uuid.uuid4().hex[:10]}") as url:
        yield url


@contextmanager
def migrated_app(backend: str, tmp_path: Path) -> Iterator:
    """The app on a throwaway database of its own, migrated; its connections closed afterwards: for what
    the shared test transaction cannot show (commits seen by other connections, requests at once)."""
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
        dbmigrate.upgrade(database(app))
        try:
            yield app
        finally:
            database(app).engine.dispose()


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("TEST_DATABASE_URL is not set: PostgreSQL part skipped")
    return request.param


@pytest.fixture(scope="session")
def database_url(backend, tmp_path_factory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
    url = _pg_url()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        # TEST_DATABASE_URL names a throwaway database: start it from an empty schema.
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def base_app(database_url, tmp_path_factory):
    """One app per backend, its database migrated to head by Alembic (as `referral-api db upgrade`)."""
    app = create_app(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path_factory.mktemp("instance")),
            "TESTING": True,
        }
    )
    dbmigrate.upgrade(database(app))
    yield app
    database(app).engine.dispose()


@pytest.fixture
def connection(base_app) -> Iterator[sa.Connection]:
    with database(base_app).engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def app(base_app, connection):
    db = database(base_app)
    original = db.sessionmaker
    db.sessionmaker = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    # Rate-limit counters live as long as the app; each test starts with a clean slate.
    base_app.extensions["referral_api.limiter"].reset()
    try:
        yield base_app
    finally:
        db.sessionmaker = original


@pytest.fixture
def session(app) -> Iterator[Session]:
    """A session in the test's transaction, as services get one (with the app's keys, as in a request)."""
    s = database(app).sessionmaker()
    s.info["referral_api.privacy"] = app.extensions["referral_api.privacy"]
    yield s
    s.close()


@pytest.fixture
def client(app):
    return app.test_client()


def _cli_runner(app):
    from referral_api.cli import cli

    runner = app.test_cli_runner()
    return lambda *args, **kwargs: runner.invoke(cli, [str(a) for a in args], **kwargs)


@pytest.fixture
def run_cli(app):
    """`run_cli("orgs", "list", "--json")`: the `referral-api` command against the test's app."""
    return _cli_runner(app)


@pytest.fixture
def factories(session):
    """Bind every factory to the test's session."""
    from tests import factories as module

    for obj in vars(module).values():
        if isinstance(obj, type) and hasattr(obj, "_meta") and hasattr(obj._meta, "sqlalchemy_session"):
            obj._meta.sqlalchemy_session = session
    return module


@pytest.fixture
def live_server(backend, tmp_path):
    """The app on a throwaway database, served by a real HTTP server on 127.0.0.1 in a thread.

    Yields (base_url, app); data must be committed (e.g. with `live_session`) to be seen by the server.
    """
    import threading

    from werkzeug.serving import make_server

    with migrated_app(backend, tmp_path) as app:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}", app
        finally:
            server.shutdown()
            thread.join(timeout=5)


@pytest.fixture
def world(client, session):
    """Organisations with clients and people; `world.headers("police")` is a real bearer token."""
    from tests import world as module

    return module.build(client, session)


@pytest.fixture
def psession(app, session):
    """The test's session inside an app context (where the keys come from), with the throwaway table."""
    from tests.throwaway import ThrowawayBase

    ThrowawayBase.metadata.create_all(session.connection())
    with app.app_context():
        yield session


@pytest.fixture
def opened(monkeypatch):
    """What the test opens (decrypts), by what each ciphertext is ("table.column of id"), in order."""
    from referral_api.privacy import crypto

    seen: list[str] = []
    real = crypto.open_sealed

    def counting(key, blob, aad, *, what):
        seen.append(what)
        return real(key, blob, aad, what=what)

    monkeypatch.setattr(crypto, "open_sealed", counting)
    return seen


@contextmanager
def round_trips(session):
    """What the block sends on the session's connection (PostgreSQL), from libpq's trace: a
    `bench.pgtrace.Traffic` (its statements, commits and round trips), complete when the block ends."""
    from bench.pgtrace import traced

    with traced(session.connection().connection.dbapi_connection) as seen:
        yield seen


@pytest.fixture
def pg_database(backend, tmp_path):
    """A migrated PostgreSQL database of the test's own (url, Database): for what a shared transaction
    cannot show (advisory locks, pg_locks, commits seen by other connections)."""
    if backend != "postgresql":
        pytest.skip("needs PostgreSQL (advisory locks, pg_locks)")
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        dbmigrate.upgrade(db)
        try:
            yield url, db
        finally:
            db.engine.dispose()
