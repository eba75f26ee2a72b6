"""audit_append() looks for events waiting for their seal only when there may be some

Revision ID: 0997
Revises: 0996
Create Date: 2026-11-29 22:00:00

The function of 0996 ran its query of the events waiting for their seal (a union of two subqueries,
sorted) at every call; usually none waits, and that query cost more than the rest of the call but the
INSERT. It now runs when the transaction hands over flushed events or when a first probe of the
unsealed events' partial index finds one with a seal input (the same condition as the query's). What
it seals, and in which order, is unchanged.

Review before merging: the function replaced (CREATE OR REPLACE: its grants stay); PostgreSQL only.
"""
import hashlib
import importlib.util
from pathlib import Path

from alembic import op


revision = '0997'
down_revision = '0996'
branch_labels = None
depends_on = None


# SHA-256 of 0996's function text as it was when this revision was written: an edit of 0996 (which a
# migration never gets) stops both directions here instead of being followed silently.
_0996_FUNCTION_SHA256 = "bbf5993d5b813dac0b2072c116c48859f1ab60f87b0bf8fbae1be1d19ad7ed0c"


def _function_of_0996() -> str:
    """0996's CREATE FUNCTION audit_append text, as a CREATE OR REPLACE (read from its own module)."""
    path = Path(__file__).with_name("0996_audit_sealed_in_the_database.py")
    spec = importlib.util.spec_from_file_location("migration_0996", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hashlib.sha256(module._APPEND.encode()).hexdigest() != _0996_FUNCTION_SHA256:
        raise RuntimeError("0996's audit_append is not the text this revision was written against")
    return module._APPEND.replace("CREATE FUNCTION audit_append", "CREATE OR REPLACE FUNCTION audit_append", 1)


_WAITING_LOOP = "        FOR waiting IN\n            (SELECT a.id, a.seal_input, 0 AS part"
_AFTER_WAITING_LOOP = "        -- the new events, in their order, inserted sealed"
_GUARD = ("        IF cardinality(flushed) > 0\n"
          "           OR EXISTS (SELECT FROM audit_events a WHERE a.seq IS NULL AND a.seal_input IS NOT NULL) THEN\n")


def _guarded(function: str) -> str:
    if function.count(_WAITING_LOOP) != 1 or function.count(_AFTER_WAITING_LOOP) != 1:
        raise RuntimeError("0996's audit_append is not the text this revision changes")
    function = function.replace(_WAITING_LOOP, _GUARD + _WAITING_LOOP)
    return function.replace(_AFTER_WAITING_LOOP, "        END IF;\n" + _AFTER_WAITING_LOOP)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_guarded(_function_of_0996()))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_function_of_0996())
