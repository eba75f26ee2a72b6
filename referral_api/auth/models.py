"""OAuth clients, tokens, authorization codes, used assertion ids, and the people who log in.

Secrets, tokens and codes are kept only as SHA-256 hashes: Authlib's SQLAlchemy mixins would store
them in plaintext, so these models implement Authlib's ClientMixin/TokenMixin/AuthorizationCodeMixin
interfaces themselves and every lookup goes through `secret_hash()`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..access import Role
from ..db import Base, IdMixin, TimestampMixin, UTCDateTime, enum_column, utcnow
from ..organisations.models import Organisation
from ..privacy import EncryptedRecordMixin, encrypted_column

TOTP_SECRET_COLUMN = "totp_secret_sealed"  # noqa: S105  (a column name)


def secret_hash(value: str) -> str:
    """The SHA-256 hex digest under which a secret, token or code is stored and looked up.

    These values are 256-bit random strings, so a fast hash is enough; a password is not one of them.
    """
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


class ClientAuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105  (a method's name, not a secret)
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105
    PRIVATE_KEY_JWT = "private_key_jwt"
    # A public client (RFC 6749 2.1, e.g. Swagger UI in a browser): no secret, the authorization code
    # with PKCE only.
    NONE = "none"


SECRET_METHODS = frozenset({ClientAuthMethod.CLIENT_SECRET_BASIC, ClientAuthMethod.CLIENT_SECRET_POST})
GRANT_TYPES = ("client_credentials", "authorization_code", "refresh_token")


def _split(text: str | None) -> list[str]:
    return (text or "").split()


class Client(IdMixin, TimestampMixin, Base, ClientMixin):
    """A partner system or an MGEC application, owned by one organisation."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    client_secret_hash: Mapped[str | None] = mapped_column(sa.String(64))
    token_endpoint_auth_method: Mapped[ClientAuthMethod] = mapped_column(
        enum_column(ClientAuthMethod, "token_endpoint_auth_method"), nullable=False
    )
    jwks: Mapped[str | None] = mapped_column(sa.Text)
    jwks_uri: Mapped[str | None] = mapped_column(sa.String(500))
    scope: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    grant_types: Mapped[str] = mapped_column(sa.Text, nullable=False, default="client_credentials")
    redirect_uris: Mapped[str] = mapped_column(sa.Text, nullable=False, default="")
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # DPoP (RFC 9449): its tokens are bound to a proof key; with `dpop_nonce`, proofs carry our nonce.
    require_dpop: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                               server_default=sa.false())
    dpop_nonce: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                             server_default=sa.false())

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    __table_args__ = (
        sa.CheckConstraint(
            "(token_endpoint_auth_method = 'private_key_jwt' AND client_secret_hash IS NULL"
            " AND (jwks IS NOT NULL OR jwks_uri IS NOT NULL))"
            " OR (token_endpoint_auth_method = 'none' AND client_secret_hash IS NULL AND jwks IS NULL"
            " AND jwks_uri IS NULL)"
            " OR (token_endpoint_auth_method IN ('client_secret_basic', 'client_secret_post')"
            " AND client_secret_hash IS NOT NULL)",
            name="credentials_match_method",
        ),
    )

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(_split(self.scope))

    # Authlib's ClientMixin
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = _split(self.redirect_uris)
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.scope
        return " ".join(s for s in _split(scope) if s in self.scopes)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in _split(self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret_hash is None or self.token_endpoint_auth_method not in SECRET_METHODS:
            return False
        return hmac.compare_digest(self.client_secret_hash, secret_hash(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # One method per client: a private_key_jwt client can never fall back to a secret.
        return not self.is_revoked and method == self.token_endpoint_auth_method.value

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in _split(self.grant_types)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in _split(self.grant_types)

    def public_jwks(self) -> dict[str, Any] | None:
        return json.loads(self.jwks) if self.jwks else None


class User(EncryptedRecordMixin, IdMixin, TimestampMixin, Base):
    """A person who logs in through /oauth/authorize."""

    __tablename__ = "users"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    email: Mapped[str] = mapped_column(sa.String(254), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(sa.String(200), nullable=False, default="")
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"), nullable=False)
    password_hash: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    # Sealed under the person's data key, as webhook secrets are (migration 0900 sealed the old ones).
    # Never logged, never shown after `users create` / `users reset-totp`.
    totp_secret = encrypted_column(TOTP_SECRET_COLUMN)
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    failed_logins: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    organisation: Mapped[Organisation] = relationship(lazy="joined")

    def get_user_id(self) -> uuid.UUID:
        return self.id

    def is_locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


class AuthorizationCode(IdMixin, Base, AuthorizationCodeMixin):
    """A code from the login form: 60 seconds, once; kept after use so that a replay is recognised."""

    __tablename__ = "oauth_authorization_codes"

    code_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    client_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False
    )
    redirect_uri: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    scope: Mapped[str] = mapped_column(sa.Text, nullable=False)
    code_challenge: Mapped[str] = mapped_column(sa.String(128), nullable=False)
    code_challenge_method: Mapped[str] = mapped_column(sa.String(8), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    client: Mapped[Client] = relationship()
    user: Mapped[User] = relationship()

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at <= now


class Token(IdMixin, Base, TokenMixin):
    """An opaque access token and, for people, its refresh token; both only as hashes."""

    __tablename__ = "oauth_tokens"

    access_token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    refresh_token_hash: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    client_pk: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True, nullable=False
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    # Tokens issued from one code and its rotated refresh tokens share a family; a replayed code or
    # refresh token revokes the whole family.
    authorization_code_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("oauth_authorization_codes.id", ondelete="SET NULL"), index=True
    )
    family_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    scope: Mapped[str] = mapped_column(sa.Text, nullable=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    expires_in: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    access_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refresh_revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The JWK SHA-256 thumbprint (RFC 7638) of the DPoP key the token is bound to (`cnf.jkt`).
    dpop_jkt: Mapped[str | None] = mapped_column(sa.String(43))

    client: Mapped[Client] = relationship(lazy="joined")
    user: Mapped[User | None] = relationship(lazy="joined")

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=self.expires_in)

    def revoke(self, now: datetime) -> None:
        self.access_revoked_at = self.access_revoked_at or now
        if self.refresh_token_hash:
            self.refresh_revoked_at = self.refresh_revoked_at or now

    # Authlib's TokenMixin
    def check_client(self, client: Client) -> bool:
        return self.client_pk == client.id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return self.access_revoked_at is not None

    def get_user(self) -> User | None:
        return self.user

    def get_client(self) -> Client:
        return self.client


class UsedAssertion(IdMixin, Base):
    """A private_key_jwt assertion id (`jti`) already accepted from one client: each is accepted once."""

    __tablename__ = "oauth_used_assertions"

    client_id: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    jti_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, nullable=False)

    __table_args__ = (sa.UniqueConstraint("client_id", "jti_hash"),)


class UsedDPoPProof(IdMixin, Base):
    """A DPoP proof already accepted (hash of its key thumbprint and `jti`), kept while its `iat` is
    inside the accepted window: each proof is accepted once."""

    __tablename__ = "oauth_dpop_proofs"

    jti_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True, nullable=False)
