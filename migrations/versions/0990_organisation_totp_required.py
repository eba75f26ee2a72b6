"""Organisations: whether their partner officers must sign in with a TOTP code

Revision ID: 0990
Revises: 0970
Create Date: 2026-11-29 12:00:00

Review before merging: one boolean column with a server default on an existing table (no rewrite on
PostgreSQL 11+). Embassies need no row change: they always require TOTP (Organisation.requires_totp).
"""
from alembic import op
import sqlalchemy as sa


revision = '0990'
down_revision = '0970'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_required', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('organisations', schema=None) as batch_op:
        batch_op.drop_column('totp_required')
