"""deadlines: what was raised last kept on the record (raised_deadline, raised_period, raised_level)

Revision ID: 0960
Revises: 0950
Create Date: 2026-11-29 09:40:00.000000

The deadlines evaluation skips a wait raised up to its level in this period by these columns (in
the covering index of cases it scans), not by looking at the overdue items, and finds the records
whose move answered their items by a small partial index. Existing open items are written onto
their records (the latest period, its highest level).

Review before merging: on PostgreSQL, ALTER TABLE takes an ACCESS EXCLUSIVE lock; add columns
nullable or with a constant default, build large indexes CONCURRENTLY in a separate revision.
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0960'
down_revision = '0950'
branch_labels = None
depends_on = None

_TABLES = (('referrals', 'status_changed_at'), ('cases', 'stage_since'))
_INCLUDE = ['id', 'reference', 'stage_since', 'held_seconds', 'on_hold', 'erased_at']
_RAISED = ['raised_deadline', 'raised_period', 'raised_level']
_OPEN = "cleared_at IS NULL"


def _answered(period: str) -> sa.TextClause:
    return sa.text(f"raised_period IS NOT NULL AND (raised_period <> {period} OR erased_at IS NOT NULL)")


def _backfill(table: str) -> None:
    """Each record with open items keeps the latest period's highest level."""
    latest = (f"(SELECT o.{{col}} FROM overdue_items o WHERE o.subject_id = {table}.id AND o.{_OPEN} "
              "ORDER BY o.period_start DESC, o.level DESC LIMIT 1)")
    op.execute(
        f"UPDATE {table} SET raised_deadline = {latest.format(col='deadline')}, "
        f"raised_period = {latest.format(col='period_start')}, raised_level = {latest.format(col='level')} "
        f"WHERE id IN (SELECT subject_id FROM overdue_items WHERE {_OPEN})"
    )


def upgrade() -> None:
    for table, period in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('raised_deadline', sa.String(length=20), nullable=True))
            batch_op.add_column(sa.Column('raised_period', referral_api.db.UTCDateTime(timezone=True),
                                          nullable=True))
            batch_op.add_column(sa.Column('raised_level', sa.Integer(), nullable=True))
        _backfill(table)
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_index(f'ix_{table}_raised_answered', ['id'], unique=False,
                                  postgresql_where=_answered(period), sqlite_where=_answered(period))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_stage_clock')
        batch_op.create_index('ix_cases_stage_clock', ['stage', 'clock_since'], unique=False,
                              postgresql_include=_INCLUDE + _RAISED)
    with op.batch_alter_table('overdue_items', schema=None) as batch_op:
        batch_op.create_index('ix_overdue_items_open_deadline', ['deadline', 'subject_id'], unique=False,
                              postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))


def downgrade() -> None:
    with op.batch_alter_table('overdue_items', schema=None) as batch_op:
        batch_op.drop_index('ix_overdue_items_open_deadline')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_stage_clock')
        batch_op.create_index('ix_cases_stage_clock', ['stage', 'clock_since'], unique=False,
                              postgresql_include=_INCLUDE)
    for table, _period in reversed(_TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(f'ix_{table}_raised_answered')
            for column in reversed(_RAISED):
                batch_op.drop_column(column)
