"""webhook subscriptions receive only events published after their creation

Revision ID: 0910
Revises: 0900
Create Date: 2026-11-29 09:05:00

Existing subscriptions keep 0 (they have seen the outbox from its start already). A constant
server default: on PostgreSQL 11+ the column is added without rewriting the table.
"""
from alembic import op
import sqlalchemy as sa


revision = '0910'
down_revision = '0900'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('starts_after_seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('starts_after_seq')
