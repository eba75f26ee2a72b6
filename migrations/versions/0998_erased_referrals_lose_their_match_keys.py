"""the match keys (blind indexes) of referrals erased before this revision are deleted

Revision ID: 0998
Revises: 0997
Create Date: 2026-11-30 05:30:00

Erasure now deletes a referral's match keys with its data key (referrals/matching.py `forget`): by
them the erased person stayed recognisable (their passport number, national id, names with birth year
could be tested against the index), and a new referral of the same person was matched to a record
that can no longer be read. This deletes the keys of the referrals erased earlier, after counting
again the possible duplicates of the referrals that shared one, without the erased (as an erasure
now does).

Review before merging: data only (no schema change); the downgrade cannot bring the keys back (they
were derived from values that are shredded).
"""
from alembic import op


revision = '0998'
down_revision = '0997'
branch_labels = None
depends_on = None


_ERASED = "SELECT id FROM referrals WHERE erased_at IS NOT NULL"


def upgrade() -> None:
    # the living referrals sharing a key with an erased one: their count of other living sharers
    op.execute(f"""
        UPDATE referrals SET possible_duplicates = (
            SELECT count(DISTINCT other.referral_id) FROM referral_match_keys own
              JOIN referral_match_keys other
                ON other.kind = own.kind AND other.digest = own.digest AND other.referral_id <> own.referral_id
             WHERE own.referral_id = referrals.id AND other.referral_id NOT IN ({_ERASED}))
         WHERE erased_at IS NULL AND id IN (
            SELECT DISTINCT living.referral_id FROM referral_match_keys living
              JOIN referral_match_keys erased ON erased.kind = living.kind AND erased.digest = living.digest
             WHERE erased.referral_id IN ({_ERASED}) AND living.referral_id NOT IN ({_ERASED}))
    """)
    op.execute(f"DELETE FROM referral_match_keys WHERE referral_id IN ({_ERASED})")


def downgrade() -> None:
    pass  # the keys of erased people are not made again
