"""`upgrade head` from an empty database yields exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from referral_api import dbmigrate, models_registry  # noqa: F401
from referral_api.db import Base, Database
from tests.conftest import throwaway_database


def schema_diff(engine: sa.Engine, metadata: sa.MetaData) -> list:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return [d for d in compare_metadata(ctx, metadata) if not _ignorable(d)]


def _ignorable(diff) -> bool:
    # Alembic's own bookkeeping table is not a model.
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


def test_upgrade_head_from_empty_equals_models(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            assert schema_diff(db.engine, Base.metadata) == []
            with db.engine.connect() as conn:
                assert dbmigrate.is_at_head(conn)
        finally:
            db.engine.dispose()


def test_the_check_sees_a_model_the_migrations_lack(backend, tmp_path):
    """The comparison above can fail: a table in the models but not in the migrations is reported."""
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            metadata = sa.MetaData()
            for table in Base.metadata.tables.values():
                table.to_metadata(metadata)
            sa.Table("not_migrated", metadata, sa.Column("id", sa.Integer, primary_key=True))
            metadata.tables["organisations"].append_column(sa.Column("extra", sa.String(5)))
            diff = schema_diff(db.engine, metadata)
            kinds = {d[0] if isinstance(d, tuple) else d[0][0] for d in diff}
            assert {"add_table", "add_column"} <= kinds
        finally:
            db.engine.dispose()


def test_downgrade_to_base_and_back(backend, tmp_path):
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db)
            dbmigrate.downgrade(db, "base")
            with db.engine.connect() as conn:
                assert set(sa.inspect(conn).get_table_names()) <= {"alembic_version"}
            dbmigrate.upgrade(db)
            assert schema_diff(db.engine, Base.metadata) == []
        finally:
            db.engine.dispose()


def test_a_sqlite_batch_migration_keeps_the_rows_pointing_at_the_table_it_copies(tmp_path):
    """0995 copies `oauth_clients` (batch mode): the tokens and codes pointing at it stay."""
    db = Database(f"sqlite:///{tmp_path / 'kept.sqlite3'}")
    try:
        dbmigrate.upgrade(db, "0990")
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO organisations (id, name, kind, country, status, totp_required, created_at,"
                " updated_at) VALUES ('o1', 'Police', 'police', 'MO', 'active', 0, '2026-01-01',"
                " '2026-01-01')")
            conn.exec_driver_sql(
                "INSERT INTO oauth_clients (id, client_id, name, organisation_id, client_secret_hash,"
                " token_endpoint_auth_method, scope, grant_types, redirect_uris, require_dpop, created_at,"
                " updated_at) VALUES ('c1', 'cl_1', 'System', 'o1', 'x', 'client_secret_basic',"
                " 'referrals:read', 'client_credentials', '[]', 0, '2026-01-01', '2026-01-01')")
            conn.exec_driver_sql(
                "INSERT INTO oauth_tokens (id, access_token_hash, client_pk, scope, issued_at, expires_in)"
                " VALUES ('t1', 'h1', 'c1', 'referrals:read', '2026-01-01', 900)")
        dbmigrate.upgrade(db)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM oauth_tokens").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # on again for the app
    finally:
        db.engine.dispose()
