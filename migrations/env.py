"""Alembic environment: runs against the engine or connection the app hands over (see dbmigrate.py)."""

from alembic import context

from referral_api import models_registry  # noqa: F401  (imports every model onto Base.metadata)
from referral_api.db import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        transaction_per_migration=True,
    )


def _sqlite_foreign_keys(connection, *, on: bool) -> None:
    """A batch migration copies a SQLite table and drops the old one: with foreign keys on, the drop
    would delete (ON DELETE CASCADE) every row pointing at it, e.g. all tokens of `oauth_clients`.
    They are off while migrating and checked after (`PRAGMA foreign_key_check`)."""
    connection.connection.driver_connection.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = config.attributes["engine"]
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:  # before SQLAlchemy's BEGIN: SQLite ignores the pragma inside a transaction
            _sqlite_foreign_keys(connection, on=False)
        try:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                connection.rollback()
                if broken:
                    raise RuntimeError(f"the migration left rows pointing nowhere: {broken[:5]}")
        finally:
            if sqlite:
                _sqlite_foreign_keys(connection, on=True)


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `referral-api db upgrade`")
run_migrations_online()
