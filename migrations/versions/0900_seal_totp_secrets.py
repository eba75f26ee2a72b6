"""seal TOTP secrets under each person's data key

Revision ID: 0900
Revises: 0850
Create Date: 2026-11-29 09:00:00

The plain users.totp_secret column becomes users.totp_secret_sealed (AES-GCM under a data key of
the person, like every other sealed field). Existing secrets are sealed here, which needs the keys:
run it as `referral-api db upgrade` (the app's settings give the master key ring). On a database
with TOTP secrets and no keys at hand it stops with that message and changes nothing.
"""
from alembic import op
import sqlalchemy as sa


revision = '0900'
down_revision = '0850'
branch_labels = None
depends_on = None

SEALED = "totp_secret_sealed"


def _privacy():
    from referral_api.privacy import get_privacy

    try:
        return get_privacy()
    except RuntimeError:
        raise RuntimeError(
            "TOTP secrets exist and sealing them needs the keys: run `referral-api db upgrade` "
            "with the service's settings (REFERRAL_API_MASTER_KEY or its instance folder)."
        ) from None


def _users():
    return sa.table(
        "users", sa.column("id", sa.Uuid()), sa.column("data_key_id", sa.Uuid()),
        sa.column("totp_secret", sa.String(64)), sa.column(SEALED, sa.LargeBinary()),
    )


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('data_key_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column(SEALED, sa.LargeBinary(), nullable=True))
        batch_op.create_index(batch_op.f('ix_users_data_key_id'), ['data_key_id'], unique=False)

    from referral_api.privacy import crypto

    conn = op.get_bind()
    users = _users()
    rows = conn.execute(sa.select(users.c.id, users.c.totp_secret).where(users.c.totp_secret.is_not(None))).all()
    if rows:
        privacy = _privacy()
        session = sa.orm.Session(bind=conn)
        for row in rows:
            data_key_id, key = privacy.keystore.create(session, privacy.keyring)
            session.flush()
            aad = crypto.associated_data("users", SEALED, row.id, data_key_id)
            sealed = crypto.seal(key, crypto.encode_value(row.totp_secret), aad)
            conn.execute(sa.update(users).where(users.c.id == row.id)
                         .values(data_key_id=data_key_id, **{SEALED: sealed}))
        session.flush()

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('totp_secret')


def downgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))

    from referral_api.privacy import crypto

    conn = op.get_bind()
    users = _users()
    rows = conn.execute(sa.select(users.c.id, users.c.data_key_id, users.c[SEALED])
                        .where(users.c[SEALED].is_not(None))).all()
    if rows:
        privacy = _privacy()
        session = sa.orm.Session(bind=conn)
        for row in rows:
            key = privacy.keystore.get(session, privacy.keyring, row.data_key_id)
            aad = crypto.associated_data("users", SEALED, row.id, row.data_key_id)
            secret = crypto.decode_value(crypto.open_sealed(key, row[2], aad, what=f"users.{SEALED} of {row.id}"))
            conn.execute(sa.update(users).where(users.c.id == row.id).values(totp_secret=secret))

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_users_data_key_id'))
        batch_op.drop_column(SEALED)
        batch_op.drop_column('data_key_id')
