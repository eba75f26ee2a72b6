"""Organisations: whether their partner officers must sign in with a TOTP code

Revision ID: 0990
Revises: 0985
Create Date: 2026-11-29 12:00:00

Review before merging: one boolean column with a server default on an existing table (no rewrite on
PostgreSQL 11+); the downgrade drops it in place. Embassies need no row change: they always require TOTP (Organisation.requires_totp).
"""
from alembic import op
import sqlalchemy as sa


revision = '0990'
down_revision = '0985'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # In place, without batch mode: batch mode would copy and drop `organisations`, which every part's
    # rows refer to, and SQLite refuses to drop a table others point at (ADD COLUMN is enough here).
    op.add_column('organisations', sa.Column('totp_required', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    # In place too (SQLite 3.35+ has DROP COLUMN), for the same reason.
    op.drop_column('organisations', 'totp_required')
