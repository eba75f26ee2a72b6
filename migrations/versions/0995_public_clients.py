"""Public OAuth clients (token_endpoint_auth_method 'none'): the docs client of Swagger UI

Revision ID: 0995
Revises: 0990
Create Date: 2026-11-29 12:00:00

Review before merging: two CHECK constraints of oauth_clients replaced (a batch copy of the table on
SQLite; on PostgreSQL a constraint swap that validates the existing rows, a small table).
"""
from alembic import op
import sqlalchemy as sa


revision = '0995'
down_revision = '0990'
branch_labels = None
depends_on = None

_OLD_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt']
_OLD_MATCH = (
    "(token_endpoint_auth_method = 'private_key_jwt' AND client_secret_hash IS NULL"
    " AND (jwks IS NOT NULL OR jwks_uri IS NOT NULL))"
    " OR (token_endpoint_auth_method <> 'private_key_jwt' AND client_secret_hash IS NOT NULL)"
)
_NEW_MATCH = (
    "(token_endpoint_auth_method = 'private_key_jwt' AND client_secret_hash IS NULL"
    " AND (jwks IS NOT NULL OR jwks_uri IS NOT NULL))"
    " OR (token_endpoint_auth_method = 'none' AND client_secret_hash IS NULL AND jwks IS NULL"
    " AND jwks_uri IS NULL)"
    " OR (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post')"
    " AND client_secret_hash IS NOT NULL)"
)


def _swap(methods: list[str], match: str) -> None:
    with op.batch_alter_table('oauth_clients', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_oauth_clients_token_endpoint_auth_method'), type_='check')
        batch_op.drop_constraint(op.f('ck_oauth_clients_credentials_match_method'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_oauth_clients_token_endpoint_auth_method'),
            sa.column('token_endpoint_auth_method').in_(methods),
        )
        batch_op.create_check_constraint(op.f('ck_oauth_clients_credentials_match_method'), sa.text(match))


def upgrade() -> None:
    _swap([*_OLD_METHODS, 'none'], _NEW_MATCH)


def downgrade() -> None:
    # The old constraints have no room for a public client: its codes, tokens and itself go.
    public = "SELECT id FROM oauth_clients WHERE token_endpoint_auth_method = 'none'"
    op.execute(f"DELETE FROM oauth_tokens WHERE client_pk IN ({public})")
    op.execute(f"DELETE FROM oauth_authorization_codes WHERE client_pk IN ({public})")
    op.execute("DELETE FROM oauth_clients WHERE token_endpoint_auth_method = 'none'")
    _swap(_OLD_METHODS, _OLD_MATCH)
