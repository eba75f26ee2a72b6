"""shelters can be closed; consent changes on the case timeline

Revision ID: 0920
Revises: 0910
Create Date: 2026-11-29 09:00:00.000000

Review before merging: on PostgreSQL, ALTER TABLE takes an ACCESS EXCLUSIVE lock; the new column is
nullable and the CHECK on case_events.kind is swapped for a wider one (a short lock, no rewrite of
data beyond the column's length).
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0920'
down_revision = '0910'
branch_labels = None
depends_on = None

_OLD_KINDS = ('opened', 'moved', 'held', 'resumed')
_NEW_KINDS = (*_OLD_KINDS, 'consent_changed')


def _kind(values):
    return sa.Enum(*values, name='kind', native_enum=False, create_constraint=True,
                   length=max(len(v) for v in values))


def _swap_kind(old, new) -> None:
    # SQLite rebuilds the table: kind is named as an enum so its old CHECK is dropped, not copied.
    with op.batch_alter_table(
        'case_events', reflect_args=[sa.Column('kind', _kind(old), nullable=False)]
    ) as batch_op:
        batch_op.alter_column('kind', existing_type=_kind(old), type_=_kind(new), existing_nullable=False)


def upgrade() -> None:
    with op.batch_alter_table('shelters', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', referral_api.db.UTCDateTime(timezone=True), nullable=True))
    _swap_kind(_OLD_KINDS, _NEW_KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM case_events WHERE kind = 'consent_changed'")
    _swap_kind(_NEW_KINDS, _OLD_KINDS)
    with op.batch_alter_table('shelters', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
