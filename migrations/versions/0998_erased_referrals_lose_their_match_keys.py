"""the match keys (blind indexes) of referrals erased before this revision are deleted

Revision ID: 0998
Revises: 0997
Create Date: 2026-11-30 05:30:00

Erasure now deletes a referral's match keys with its data key (referrals/matching.py `forget`): by
them the erased person stayed recognisable (their passport number, national id, names with birth year
could be tested against the index), and a new referral of the same person was matched to a record
that can no longer be read. This deletes the keys of the referrals erased earlier. The counts of
possible duplicates stored on other referrals stay as they were (they are history; a referral's
matches are computed when asked for, and no longer list an erased one).

Review before merging: data only (no schema change); the downgrade cannot bring the keys back (they
were derived from values that are shredded).
"""
from alembic import op


revision = '0998'
down_revision = '0997'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM referral_match_keys WHERE referral_id IN "
               "(SELECT id FROM referrals WHERE erased_at IS NOT NULL)")


def downgrade() -> None:
    pass  # the keys of erased people are not made again
