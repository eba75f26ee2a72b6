"""RFC 7009 revocation and RFC 7662 introspection: client authentication, each client its own tokens."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from ..audit.actions import AuditAction
from ..db import get_session, utcnow
from . import trail
from .client_auth import AUTH_METHODS
from .models import Client, Token
from .store import issuer, query_token, token_is_live


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, oauth_request: Any, client: Client) -> Token | None:
        self.check_params(oauth_request, client)
        token, _kind = query_token(oauth_request.form["token"], oauth_request.form.get("token_type_hint"))
        # Another client's token is treated as unknown: 200 and nothing revoked (RFC 7009, 2.2),
        # so that revocation does not tell whether a token exists.
        return token if token is not None and token.check_client(client) else None

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return query_token(token_string, token_type_hint)[0]

    def revoke_token(self, token: Token, oauth_request: Any) -> None:
        session = get_session()
        token.revoke(utcnow())
        trail.record(session, AuditAction.AUTH_TOKEN_REVOKE, resource_type="token", resource_id=token.id,
                     client=oauth_request.client)
        session.commit()


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, oauth_request: Any, client: Client) -> tuple[Token, str] | None:
        self.check_params(oauth_request, client)
        token, kind = query_token(oauth_request.form["token"], oauth_request.form.get("token_type_hint"))
        known = token is not None and self.check_permission(token, client, oauth_request)
        session = get_session()
        trail.record(session, AuditAction.AUTH_TOKEN_INTROSPECT, resource_type="token",
                     resource_id=token.id if known else None, client=client, details={"known": known})
        session.commit()
        return (token, kind) if known else None

    def check_permission(self, token: Token, client: Client, oauth_request: Any) -> bool:
        return token.check_client(client)

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        return query_token(token_string, token_type_hint)[0]

    def create_introspection_payload(self, found: tuple[Token, str] | None) -> dict[str, Any]:
        if found is None or not token_is_live(*found):
            return {"active": False}
        return self.introspect_token(found)

    def introspect_token(self, found: tuple[Token, str]) -> dict[str, Any]:
        token, kind = found
        exp = token.expires_at if kind == "access_token" else token.refresh_expires_at
        org = token.user.organisation if token.user else token.client.organisation
        payload = {
            "active": True,
            "client_id": token.client.client_id,
            "scope": token.scope,
            "sub": str(token.user_id) if token.user_id else token.client.client_id,
            "iss": issuer(),
            "iat": int(token.issued_at.timestamp()),
            "exp": int(exp.timestamp()) if exp else None,
            "organisation_id": str(org.id),
        }
        if kind == "access_token":
            # RFC 7662: the type of an access token (RFC 6749, 7.1); not a secret.
            payload["token_type"] = "DPoP" if token.dpop_jkt else "Bearer"
        if token.dpop_jkt:
            payload["cnf"] = {"jkt": token.dpop_jkt}  # RFC 9449, 6.2
        return payload
