"""The grants of docs/security.md: client credentials, authorization code with PKCE S256 only, and
refresh tokens rotated on use; codes and refresh tokens are claimed atomically, and a replay
revokes what they issued."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    AccessDeniedError,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    UnauthorizedClientError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import current_app

from ..access import ALL_SCOPES, PERSON_ONLY_SCOPES, effective_scopes
from ..audit.actions import AuditAction, Outcome
from ..db import get_session, utcnow
from . import client_cache, dpop, trail
from .client_auth import AUTH_METHODS
from .models import AuthorizationCode, Client, ClientAuthMethod, Token, User, secret_hash
from .store import may_sign_in_through, revoke_family, user_may_act

CODE_TTL = 60


class DPoPBinding:
    """Binds the token to the DPoP proof's key (RFC 9449): checked once the client is known, before any
    code or refresh token is spent; the token is then of type DPoP."""

    request: Any

    def check_dpop(self, client: Client) -> None:
        self.request.dpop_jkt = dpop.bind_token_request(client)

    def generate_token(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        token = super().generate_token(*args, **kwargs)  # type: ignore[misc]
        if getattr(self.request, "dpop_jkt", None):
            token["token_type"] = "DPoP"  # noqa: S105  (RFC 9449's token type, not a secret)
        return token


class ClientCredentialsGrant(DPoPBinding, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def validate_token_request(self) -> None:
        """Authlib's checks and the DPoP binding. The one grant that may authenticate its client from a
        copy (client_cache.py): a refusal decided on a copy (a scope, grant or DPoP setting changed
        since) is decided again on a fresh read."""
        client_cache.allow()
        try:
            self._validate()
        except OAuth2Error:
            if not client_cache.retry_fresh():
                raise
            self._validate()

    def _validate(self) -> None:
        super().validate_token_request()
        self.check_dpop(self.request.client)

    def validate_requested_scope(self) -> None:
        """requested ∩ the client's; a person-only scope asked for by a system is invalid_scope."""
        client: Client = self.request.client
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if requested - ALL_SCOPES:
            raise InvalidScopeError(f"Unknown scopes: {' '.join(sorted(requested - ALL_SCOPES))}.")
        if requested & PERSON_ONLY_SCOPES:
            raise InvalidScopeError(
                f"{' '.join(sorted(requested & PERSON_ONLY_SCOPES))} only ever go to a person's token "
                "(authorization code), never to client credentials."
            )
        scopes = effective_scopes(requested or client.scopes, client_scopes=client.scopes, role=None)
        if not scopes:
            raise InvalidScopeError("None of the requested scopes is allowed to this client.")
        self.request.scope = " ".join(sorted(scopes))

    def create_token_response(self) -> tuple[int, dict, list]:
        try:
            return self._issue()
        except client_cache.StaleClient:
            # The client changed elsewhere since this process copied it; nothing was written. Decided
            # again, from a fresh read of the client (its refusal is answered as any other).
            get_session().rollback()
            client_cache.retry_fresh()
            self._validate()
            return self._issue()

    def _issue(self) -> tuple[int, dict, list]:
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only: `plain`, a missing method and a missing challenge are refused."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE with S256 is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(DPoPBinding, grants.AuthorizationCodeGrant):
    # "none": a public client (the docs client) proves itself with its PKCE verifier alone.
    TOKEN_ENDPOINT_AUTH_METHODS = [*AUTH_METHODS, "none"]

    def validate_authorization_request(self) -> Any:
        """Authlib's checks; where OAUTH_REQUIRE_PRIVATE_KEY_JWT is set, a public client is refused
        here already (its code could never be exchanged: the token endpoint refuses `none`)."""
        redirect_uri = super().validate_authorization_request()
        client: Client = self.request.client
        if client.token_endpoint_auth_method is ClientAuthMethod.NONE and \
                current_app.config["SETTINGS"].require_private_key_jwt:
            raise UnauthorizedClientError(
                "This deployment requires private_key_jwt (OAUTH_REQUIRE_PRIVATE_KEY_JWT): public clients "
                "are refused.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, oauth_request: Any) -> None:
        client: Client = oauth_request.client
        user: User = oauth_request.user
        if not may_sign_in_through(client, user):
            raise AccessDeniedError("This application belongs to another organisation: sign in through "
                                    "your own organisation's application.", redirect_uri=self.redirect_uri)
        requested = scope_to_list(oauth_request.scope) or []
        scopes = effective_scopes(requested, client_scopes=client.scopes, role=user.role)
        if not scopes:
            raise InvalidScopeError("Your role holds none of the requested scopes.",
                                    redirect_uri=self.redirect_uri)
        data = oauth_request.payload.data
        session = get_session()
        now = utcnow()
        session.add(AuthorizationCode(
            code_hash=secret_hash(code),
            client_pk=client.id,
            user_id=user.id,
            redirect_uri=oauth_request.payload.redirect_uri or client.get_default_redirect_uri() or "",
            scope=" ".join(sorted(scopes)),
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            created_at=now,
            expires_at=now + timedelta(seconds=CODE_TTL),
        ))
        session.commit()

    def query_authorization_code(self, code: str, client: Client) -> AuthorizationCode | None:
        self.check_dpop(client)  # before the code is claimed: a refused proof leaves it usable
        session = get_session()
        row = session.scalar(sa.select(AuthorizationCode).where(
            AuthorizationCode.code_hash == secret_hash(code), AuthorizationCode.client_pk == client.id))
        if row is None:
            return None
        now = utcnow()
        # Claim the code atomically: of two concurrent exchanges, one wins and the other is a replay.
        claimed = session.execute(
            sa.update(AuthorizationCode)
            .where(AuthorizationCode.id == row.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        if not claimed:
            trail.record(session, AuditAction.AUTH_CODE_REUSE, resource_type="authorization_code",
                         resource_id=row.id, client=client, outcome=Outcome.DENIED,
                         details={"reason": "code used twice; the tokens it gave are revoked"})
            revoke_family(session, code_id=row.id)
            return None
        session.commit()
        if row.is_expired(now):
            return None
        return row

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Kept, marked used (in query_authorization_code), so that a replay is recognised."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        user = get_session().get(User, authorization_code.user_id)
        return user if user_may_act(user, self.request.client) else None


class RefreshTokenGrant(DPoPBinding, grants.RefreshTokenGrant):
    """Rotation on use; every refusal (scope included) comes before the old refresh token is spent."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        """The live refresh token of this client, not yet spent (a spent one revokes its family)."""
        session = get_session()
        row = session.scalar(sa.select(Token).where(Token.refresh_token_hash == secret_hash(refresh_token)))
        if row is None or row.client_pk != self.request.client.id:
            return None
        if row.refresh_revoked_at is not None:
            self._replayed(row)
            return None
        if row.refresh_expires_at is None or row.refresh_expires_at <= utcnow():
            return None
        return row

    def _replayed(self, row: Token) -> None:
        session = get_session()
        trail.record(session, AuditAction.AUTH_TOKEN_REFRESH, resource_type="token", resource_id=row.id,
                     client=self.request.client, outcome=Outcome.DENIED,
                     details={"reason": "spent refresh token presented again; its family is revoked"})
        if row.family_id is not None:
            revoke_family(session, family_id=row.family_id)
        session.commit()

    def validate_token_request(self) -> None:
        """Authlib's checks, then the scope to issue; only then is the refresh token spent, atomically."""
        super().validate_token_request()
        row: Token = self.request.refresh_token
        user = self.authenticate_user(row)
        if user is None:
            raise InvalidRequestError("There is no 'user' for this token.")
        self._scope = self._scope_to_issue(user, row)
        self.check_dpop(self.request.client)
        session = get_session()
        # Rotation: of two concurrent refreshes one wins; the other is a replay and revokes the family.
        claimed = session.execute(
            sa.update(Token).where(Token.id == row.id, Token.refresh_revoked_at.is_(None))
            .values(refresh_revoked_at=utcnow())
        ).rowcount
        if not claimed:
            self._replayed(row)
            raise InvalidGrantError()
        session.commit()

    def _scope_to_issue(self, user: User, refresh_token: Token) -> str:
        client: Client = self.request.client
        requested = scope_to_list(self.request.payload.scope) or scope_to_list(refresh_token.get_scope())
        scopes = effective_scopes(requested or [], client_scopes=client.scopes, role=user.role)
        if not scopes:
            raise InvalidScopeError()
        return " ".join(sorted(scopes))

    def authenticate_user(self, refresh_token: Token) -> User | None:
        user = refresh_token.user
        return user if user_may_act(user, self.request.client) else None

    def issue_token(self, user: User, refresh_token: Token) -> dict[str, Any]:
        return self.generate_token(user=user, scope=self._scope, include_refresh_token=True)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.revoke(utcnow())
        get_session().commit()
