"""Alembic, driven from the app: upgrade, downgrade, the current and the head revision."""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from .db import Database

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(db: Database, connection: sa.Connection | None = None) -> Config:
    """An Alembic config pointing at migrations/, using the app's engine (or a given connection)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = db.engine
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _heads(script_location: str) -> frozenset[str]:
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def head_revisions() -> set[str]:
    """The migrations' head revision(s), read once per process: parsing every script costs about 30 ms
    (public `/readyz` asks at each call), and the code's own migrations do not change while it runs."""
    return set(_heads(str(MIGRATIONS_DIR)))


def current_revisions(connection: sa.Connection) -> set[str]:
    return set(MigrationContext.configure(connection).get_current_heads())


def upgrade(db: Database, revision: str = "head") -> None:
    command.upgrade(alembic_config(db), revision)


def downgrade(db: Database, revision: str) -> None:
    command.downgrade(alembic_config(db), revision)


def is_at_head(connection: sa.Connection) -> bool:
    return current_revisions(connection) == head_revisions()
