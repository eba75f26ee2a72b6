"""References numbered by a PostgreSQL sequence per prefix (REF, CASE)

Revision ID: 0980
Revises: 0970
Create Date: 2026-11-29 11:50:00

Review before merging: PostgreSQL only (SQLite keeps the counter table). Each sequence starts after the
largest number given so far, by the counter of any year or found in a stored reference, so no
existing reference ever comes again. Downgrade hands the numbers back to the counter rows (the
current year's row is created when missing), so the counter carries on after the sequence.
"""
from alembic import op
import sqlalchemy as sa


revision = '0980'
down_revision = '0970'
branch_labels = None
depends_on = None

# prefix -> the table whose `reference` column carries it
PREFIXES = {'REF': 'referrals', 'CASE': 'cases'}


def _sequence(prefix: str) -> str:
    return f'reference_{prefix.lower()}_seq'


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    for prefix, table in PREFIXES.items():
        counted = bind.execute(
            sa.text('SELECT coalesce(max(last), 0) FROM reference_counters WHERE prefix = :p'), {'p': prefix}
        ).scalar_one()
        stored = bind.execute(
            sa.text(f"SELECT coalesce(max(substring(reference from '-([0-9]+)$')::bigint), 0) FROM {table}")
        ).scalar_one()
        start = max(counted, stored) + 1
        op.execute(sa.text(f'CREATE SEQUENCE {_sequence(prefix)} START WITH {int(start)}'))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    for prefix in PREFIXES:
        sequence = _sequence(prefix)
        last = bind.execute(
            sa.text(f'SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {sequence}')
        ).scalar_one()
        bind.execute(
            sa.text(
                'INSERT INTO reference_counters (prefix, year, last) '
                'VALUES (:p, extract(year FROM now())::int, :n) '
                'ON CONFLICT (prefix, year) DO UPDATE SET last = greatest(reference_counters.last, :n)'
            ),
            {'p': prefix, 'n': last},
        )
        bind.execute(
            sa.text('UPDATE reference_counters SET last = greatest(last, :n) WHERE prefix = :p'),
            {'p': prefix, 'n': last},
        )
        op.execute(sa.text(f'DROP SEQUENCE {sequence}'))
