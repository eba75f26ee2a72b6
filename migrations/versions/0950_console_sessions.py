"""console sessions

Revision ID: 0950
Revises: 0940
Create Date: 2026-11-29 09:10:00

Review before merging: a new table only; no lock on existing tables beyond the foreign keys' checks.
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0950'
down_revision = '0940'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'console_sessions',
        sa.Column('session_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Uuid(), nullable=True),
        sa.Column('token_id', sa.Uuid(), nullable=True),
        sa.Column('sealed_refresh_token', sa.LargeBinary(), nullable=True),
        sa.Column('language', sa.String(length=5), nullable=False),
        sa.Column('created_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', referral_api.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['token_id'], ['oauth_tokens.id'],
                                name=op.f('fk_console_sessions_token_id_oauth_tokens'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_console_sessions_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_console_sessions')),
        sa.UniqueConstraint('session_hash', name=op.f('uq_console_sessions_session_hash')),
    )
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_sessions_user_id'))
    op.drop_table('console_sessions')
