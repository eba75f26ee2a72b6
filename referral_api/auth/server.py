"""Authlib's AuthorizationServer put together, and the bearer-token check behind
access.require_scope()."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskJsonRequest
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from flask import Flask, current_app, g, request

from ..access import ALL_SCOPES, Actor, OrganisationRef
from ..db import get_session
from . import client_cache, dpop, token_cache
from .client_auth import AUTH_METHODS, PrivateKeyJWT
from .endpoints import Introspection, Revocation
from .failures import audit_token_failure
from .grants import AuthorizationCodeGrant, ClientCredentialsGrant, RefreshTokenGrant, S256CodeChallenge
from .limits import client_key, mark_authenticated, presented_methods
from .models import Token, secret_hash
from .store import query_client, save_token, token_is_live

REALM = "referral-api"
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


# One answer to every failed client authentication: Authlib's descriptions (and its 400 or 401) told a
# caller without credentials whether a client id exists, is revoked, and how it authenticates.
CLIENT_AUTH_FAILED = ("Client authentication failed: check the client id, its credentials and its "
                      "registered authentication method.")


class AuthorizationServer(FlaskAuthorizationServer):
    def authenticate_client(self, oauth_request: Any, methods: Any, endpoint: str = "token") -> Any:
        """Authlib's client authentication, its failures answered alike (`invalid_client`) and
        summarised in the audit (token, introspection and revocation endpoints); a client that proved
        who it is is counted against its token limit (limits.mark_authenticated)."""
        try:
            if len(presented_methods()) > 1:
                # RFC 6749, 2.3: one method a request. Authlib tries each in turn, so a wrong secret of
                # one client beside the good credentials of another was a guess no limit counted.
                raise InvalidClientError(description="More than one client authentication method.")
            client = self._authenticate(oauth_request, methods, endpoint)
        except InvalidClientError as failure:
            audit_token_failure(get_session(), named_client_id=client_key().removeprefix("client:"),
                                endpoint=endpoint)
            # 401 always (RFC 6749, 5.2 allows it for every invalid_client): Authlib's 400 or 401 depended
            # on where its check failed, so on the client named
            raise InvalidClientError(description=CLIENT_AUTH_FAILED, status_code=401,
                                     state=failure.state) from None
        mark_authenticated(client.client_id, endpoint)
        return client

    def _authenticate(self, oauth_request: Any, methods: Any, endpoint: str) -> Any:
        """Authlib's client authentication; refused on a copy of the client (client_cache.py), once
        more on a fresh read: the copy may predate a new secret or key set."""
        try:
            return super().authenticate_client(oauth_request, methods, endpoint)
        except InvalidClientError:
            if not client_cache.retry_fresh():
                raise
        return super().authenticate_client(oauth_request, methods, endpoint)

    def create_bearer_token_generator(self, config: Any) -> BearerTokenGenerator:
        generator = super().create_bearer_token_generator(config)
        ttl = config["SETTINGS"].access_token_ttl
        generator.expires_generator = lambda client, grant_type: ttl
        generator.access_token_generator = generator.refresh_token_generator = _opaque_token
        return generator


def _opaque_token(**_context: Any) -> str:
    """256 random bits, URL-safe (an RFC 6750 b64token): one read of the OS's generator, not one call
    per character as Authlib's default makes."""
    return secrets.token_urlsafe(32)


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        digest = secret_hash(token_string)
        return get_session().scalar(sa.select(Token).where(Token.access_token_hash == digest))

    def validate_token(self, token: Token | None, scopes: Any, oauth_request: Any) -> None:
        if token is None or not token_is_live(token):
            raise InvalidTokenError(realm=self.realm)
        if token.dpop_jkt is not None:
            # RFC 9449, 7.2: a DPoP-bound token is never accepted as a bearer token.
            raise InvalidTokenError(
                description="This token is DPoP-bound: send it as 'Authorization: DPoP' with a proof.",
                realm=self.realm)


def _dpop_token(token_string: str) -> Token:
    """The live DPoP-bound token of an `Authorization: DPoP` header whose proof checks out."""
    token = _Validator(realm=REALM).authenticate_token(token_string) if token_string else None
    if token is None or not token_is_live(token) or token.dpop_jkt is None:
        raise dpop.DPoPError("The access token is invalid, expired, revoked or not DPoP-bound.",
                             error="invalid_token", at_resource=True)
    dpop.check_proof(client=token.client, access_token=token_string, bound_to=token.dpop_jkt,
                     at_resource=True)
    return token


_protector = ResourceProtector()
_protector.register_token_validator(_Validator(realm=REALM))


def authenticate_request() -> Actor:
    """The Actor of the request's bearer token; any failure is 401 invalid_token."""
    if "access_token" in request.args:
        raise InvalidTokenError(
            description="Send the access token in the Authorization header, never in the URL.",
            realm=REALM,
        )
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "dpop":
        token = _dpop_token(credential.strip())
        g.log_client_id = token.client.client_id
        return actor_of(token)
    cache = token_cache.current()
    digest = secret_hash(credential.strip()) if scheme.lower() == "bearer" else ""
    cached = cache.get(digest) if digest else None
    if cached is not None:
        g.log_client_id = cached.client_id
        return cached.actor
    generation = token_cache.generation()  # before the rows are read: a change after it refuses the put
    try:
        token = _protector.validate_request(scopes=None, request=FlaskJsonRequest(request))
    except InvalidTokenError:
        raise
    except OAuth2Error:
        raise InvalidTokenError(description="Send a bearer token in the Authorization header.",
                                realm=REALM) from None
    g.log_client_id = token.client.client_id
    actor = actor_of(token)
    cache.put(token.access_token_hash, actor=actor, client_id=token.client.client_id,
              expires_at=token.expires_at, generation=generation)
    return actor


def actor_of(token: Token) -> Actor:
    """The Actor a live token stands for (the API's bearer check and the console's session)."""
    user = token.user
    org = user.organisation if user else token.client.organisation
    return Actor(
        organisation=OrganisationRef(org.id, org.kind),
        client_id=token.client.client_id,
        user_id=user.id if user else None,
        role=user.role if user else None,
        scopes=frozenset(scope_to_list(token.scope) or []),
    )


def _refuse_secret(_query_client: Any, _oauth_request: Any) -> None:
    return None


def allowed_auth_methods() -> list[str]:
    """The client authentication methods this deployment accepts."""
    if current_app.config["SETTINGS"].require_private_key_jwt:
        return [m for m in AUTH_METHODS if m not in SECRET_AUTH_METHODS]
    return list(AUTH_METHODS)


def create_server(app: Flask) -> AuthorizationServer:
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", sorted(ALL_SCOPES))
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT())
    if app.config["SETTINGS"].require_private_key_jwt:
        # The deployment requires private_key_jwt: the secret methods and `none` (a public client,
        # e.g. the docs client) find no client, ever.
        for method in (*SECRET_AUTH_METHODS, "none"):
            server.register_client_auth_method(method, _refuse_secret)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    token_cache.init_app(app)
    client_cache.init_app(app)
    app.extensions["referral_api.oauth_server"] = server
    app.extensions["referral_api.authenticate"] = authenticate_request
    return server
