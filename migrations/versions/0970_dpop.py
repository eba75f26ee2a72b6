"""DPoP: clients that require it, tokens bound to a key thumbprint, proofs seen once

Revision ID: 0970
Revises: 0960
Create Date: 2026-11-29 09:55:00

Review before merging: two boolean columns with a server default and one nullable column on existing
tables (no rewrite on PostgreSQL 11+), and a new table.
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0970'
down_revision = '0960'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_dpop', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('dpop_nonce', sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dpop_jkt', sa.String(length=43), nullable=True))
    op.create_table(
        'oauth_dpop_proofs',
        sa.Column('jti_hash', sa.String(length=64), nullable=False),
        sa.Column('expires_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_oauth_dpop_proofs')),
        sa.UniqueConstraint('jti_hash', name=op.f('uq_oauth_dpop_proofs_jti_hash')),
    )
    with op.batch_alter_table('oauth_dpop_proofs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_oauth_dpop_proofs_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('oauth_dpop_proofs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_oauth_dpop_proofs_expires_at'))
    op.drop_table('oauth_dpop_proofs')
    with op.batch_alter_table('oauth_tokens', schema=None) as batch_op:
        batch_op.drop_column('dpop_jkt')
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.drop_column('dpop_nonce')
        batch_op.drop_column('require_dpop')
