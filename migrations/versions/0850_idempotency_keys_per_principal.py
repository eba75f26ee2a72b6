"""idempotency keys per principal, without the answer, expiring

Revision ID: 0850
Revises: 0800
Create Date: 2026-11-29 08:50:00.000000

The old rows hold answers in clear (names, passport numbers, narratives) and are keyed by client only:
they are deleted, not migrated (a client's retry after the upgrade is treated as a new request).
The table is recreated: it holds only short-lived keys, so no lock is held for long.
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0850'
down_revision = '0800'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('idempotency_keys')
    op.create_table('idempotency_keys',
    sa.Column('principal', sa.String(length=200), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('resource_id', sa.String(length=100), nullable=True),
    sa.Column('location', sa.String(length=500), nullable=True),
    sa.Column('created_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('principal', 'key', name=op.f('uq_idempotency_keys_principal_key'))
    )
    op.create_index(op.f('ix_idempotency_keys_expires_at'), 'idempotency_keys', ['expires_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_idempotency_keys_expires_at'), table_name='idempotency_keys')
    op.drop_table('idempotency_keys')
    op.create_table('idempotency_keys',
    sa.Column('owner', sa.String(length=100), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response_body', sa.Text(), nullable=True),
    sa.Column('location', sa.String(length=500), nullable=True),
    sa.Column('created_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_keys')),
    sa.UniqueConstraint('owner', 'key', name=op.f('uq_idempotency_keys_owner_key'))
    )
