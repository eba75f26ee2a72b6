"""documents: sealed attachments of referrals and cases; the outbox learns document.added

Revision ID: 0940
Revises: 0930
Create Date: 2026-11-29 09:20:00

Review before merging: on PostgreSQL, ALTER TABLE takes an ACCESS EXCLUSIVE lock; the outbox's CHECK
constraint is replaced (a short lock: the outbox table stays small once delivered events are pruned).
"""
from alembic import op
import sqlalchemy as sa
import referral_api.db


revision = '0940'
down_revision = '0930'
branch_labels = None
depends_on = None

EVENT_TYPES = [
    'referral.submitted', 'referral.under_review', 'referral.information_requested',
    'referral.information_provided', 'referral.accepted', 'referral.rejected', 'referral.withdrawn',
    'case.stage_changed', 'case.on_hold', 'case.resumed', 'case.closed', 'case.participant_added',
    'case.participant_removed', 'case.consent_changed', 'service.updated', 'webhook.ping',
    'referral.overdue', 'case.overdue', 'case.follow_up_due',
]
NEW_EVENT_TYPES = ['document.added']


def _event_type_check(types: list[str]) -> None:
    with op.batch_alter_table('outbox_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_outbox_events_type'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_outbox_events_type'), sa.column('type').in_(types)
        )


def upgrade() -> None:
    op.create_table('documents',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('referral_id', sa.Uuid(), nullable=True),
    sa.Column('case_id', sa.Uuid(), nullable=True),
    sa.Column('kind', sa.Enum('consent_form', 'passport_copy', 'travel_document', 'police_report', 'identification_photo', 'medical', 'other', name='kind', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('media_type', sa.Enum('application/pdf', 'image/jpeg', 'image/png', 'image/heic', name='media_type', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('metadata_stripped', sa.Boolean(), nullable=False),
    sa.Column('uploaded_at', referral_api.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by_organisation_id', sa.Uuid(), nullable=False),
    sa.Column('uploaded_by_client_id', sa.String(length=64), nullable=False),
    sa.Column('uploaded_by_user_id', sa.Uuid(), nullable=True),
    sa.Column('discarded_at', referral_api.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('data_key_id', sa.Uuid(), nullable=True),
    sa.Column('note', sa.LargeBinary(), nullable=True),
    sa.CheckConstraint('(referral_id IS NULL) <> (case_id IS NULL)', name=op.f('ck_documents_one_parent')),
    sa.CheckConstraint('size > 0', name=op.f('ck_documents_size_positive')),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_documents_case_id_cases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referral_id'], ['referrals.id'], name=op.f('fk_documents_referral_id_referrals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by_organisation_id'], ['organisations.id'], name=op.f('fk_documents_uploaded_by_organisation_id_organisations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents'))
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index('ix_documents_case_uploaded', ['case_id', 'uploaded_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_data_key_id'), ['data_key_id'], unique=False)
        batch_op.create_index('ix_documents_referral_uploaded', ['referral_id', 'uploaded_at', 'id'], unique=False)
    _event_type_check(EVENT_TYPES + NEW_EVENT_TYPES)


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM outbox_events WHERE type IN ('document.added')"))
    _event_type_check(EVENT_TYPES)
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_referral_uploaded')
        batch_op.drop_index(batch_op.f('ix_documents_data_key_id'))
        batch_op.drop_index('ix_documents_case_uploaded')
    op.drop_table('documents')
