"""the partners' own case numbers of records erased before this revision are dropped

Revision ID: 0999
Revises: 0998
Create Date: 2026-11-30 06:00:00

Erasure now drops `external_reference` (free text, the partner's own case number) from the erased
referrals, the erased case's participants and the thin payloads of those records' events
(reports/retention.py `_forget_partner_numbers`): it links the record to the person in the partner's
files. This does the same for the records erased earlier.

Review before merging: data only (no schema change); the downgrade cannot bring the numbers back.
"""
from alembic import op


revision = '0999'
down_revision = '0998'
branch_labels = None
depends_on = None

_ERASED_REFERRALS = "SELECT id FROM referrals WHERE erased_at IS NOT NULL"
_ERASED_CASES = "SELECT id FROM cases WHERE erased_at IS NOT NULL"


def upgrade() -> None:
    op.execute(f"UPDATE referrals SET external_reference = NULL WHERE id IN ({_ERASED_REFERRALS})")
    op.execute(f"UPDATE case_participants SET external_reference = NULL WHERE case_id IN ({_ERASED_CASES})")
    if op.get_bind().dialect.name == "postgresql":
        without = "(payload::jsonb - 'external_reference')::json"
        holds = "payload::jsonb ? 'external_reference'"
    else:
        without = "json_remove(payload, '$.external_reference')"
        holds = "json_type(payload, '$.external_reference') IS NOT NULL"
    op.execute(f"UPDATE outbox_events SET payload = {without} WHERE {holds} AND resource_id IN "
               f"({_ERASED_REFERRALS} UNION {_ERASED_CASES})")


def downgrade() -> None:
    pass  # the numbers of erased people are not brought back
