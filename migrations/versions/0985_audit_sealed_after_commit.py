"""audit events are sealed when their transaction commits: seq and hashes NULL until then

Revision ID: 0985
Revises: 0980
Create Date: 2026-11-29 12:00:00

Writers no longer queue on the chain head: an event is inserted unsealed and a sealer (the committing
transaction that gets the head's lock without waiting, or the next one) sets its seq, prev_hash and
hash once. On PostgreSQL the append-only trigger now lets exactly that update through (NULL to set, no
other column changed) and still refuses every other UPDATE, DELETE and TRUNCATE.

Review before merging: three columns lose NOT NULL (no rewrite on PostgreSQL), a check constraint
(validated against existing rows, all sealed), a partial index of the unsealed events (empty), and the
trigger function is replaced.
"""
from alembic import op
import sqlalchemy as sa


revision = '0985'
down_revision = '0980'
branch_labels = None
depends_on = None

_SEALED_WHOLE = ("(seq IS NULL AND prev_hash IS NULL AND hash IS NULL)"
                 " OR (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL)")

_CONTENT = ("id", "occurred_at", "organisation_id", "client_id", "user_id", "action", "resource_type",
            "resource_id", "outcome", "request_id")

_SEAL_OR_REFUSE = """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE'
           AND OLD.seq IS NULL AND OLD.prev_hash IS NULL AND OLD.hash IS NULL
           AND NEW.seq IS NOT NULL AND NEW.prev_hash IS NOT NULL AND NEW.hash IS NOT NULL
           AND ({new}, NEW.details::text) IS NOT DISTINCT FROM ({old}, OLD.details::text) THEN
            RETURN NEW;  -- the seal: set once, nothing else changed
        END IF;
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
""".format(new=", ".join(f"NEW.{c}" for c in _CONTENT), old=", ".join(f"OLD.{c}" for c in _CONTENT))

_REFUSE = """
    CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $$
"""


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=True)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.create_check_constraint(op.f('ck_audit_events_sealed_whole'), sa.text(_SEALED_WHOLE))
        batch_op.create_index('ix_audit_events_unsealed', ['occurred_at', 'id'], unique=False,
                              postgresql_where=sa.text('seq IS NULL'), sqlite_where=sa.text('seq IS NULL'))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_SEAL_OR_REFUSE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REFUSE)
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_unsealed', postgresql_where=sa.text('seq IS NULL'),
                            sqlite_where=sa.text('seq IS NULL'))
        batch_op.drop_constraint(op.f('ck_audit_events_sealed_whole'), type_='check')
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('seq', existing_type=sa.BigInteger(), nullable=False)
