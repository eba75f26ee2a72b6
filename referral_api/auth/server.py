"""Authlib's AuthorizationServer with the grants of SECURITY.md, private_key_jwt, revocation,
introspection, and the bearer-token check behind access.require_scope()."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import requests
import sqlalchemy as sa
from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2.requests import FlaskJsonRequest
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import (
    InvalidClientError,
    InvalidRequestError,
    InvalidScopeError,
)
from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oauth2.rfc6750 import BearerTokenGenerator, BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from flask import Flask, current_app, g, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from ..access import ALL_SCOPES, PERSON_ONLY_SCOPES, Actor, OrganisationRef, effective_scopes
from ..config import Settings
from ..db import get_session, utcnow
from .models import AuthorizationCode, Client, Token, UsedAssertion, User, secret_hash

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGORITHMS = ["PS256", "ES256", "EdDSA"]
ASSERTION_MAX_LIFETIME = 3660  # seconds an assertion may claim to live (client libraries sign for 1 hour)
CODE_TTL = 60
REFRESH_TOKEN_TTL = timedelta(hours=12)
REALM = "referral-api"


def issuer() -> str:
    """REFERRAL_API_ISSUER, or the URL the request came to (development)."""
    configured = current_app.config["SETTINGS"].issuer
    return (configured or request.host_url).rstrip("/")


def endpoint_url(path: str) -> str:
    return issuer() + path


def query_client(client_id: str) -> Client | None:
    """A client that may act now: not revoked, and its organisation not suspended."""
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    client = get_session().scalar(sa.select(Client).where(Client.client_id == client_id))
    if client is None or client.is_revoked or not client.organisation.is_active:
        return None
    g.log_client_id = client.client_id
    return client


def user_may_act(user: User | None) -> bool:
    return user is not None and user.active and user.organisation.is_active


def save_token(token: dict[str, Any], oauth_request: Any) -> None:
    """Store a new token pair as hashes, in the family of the code or refresh token it came from."""
    session = get_session()
    code: AuthorizationCode | None = oauth_request.authorization_code
    previous: Token | None = oauth_request.refresh_token
    family_id, code_id = None, None
    if code is not None:
        family_id, code_id = uuid.uuid4(), code.id
    elif previous is not None:
        family_id, code_id = previous.family_id, previous.authorization_code_id
    now = utcnow()
    refresh = token.get("refresh_token")
    session.add(Token(
        access_token_hash=secret_hash(token["access_token"]),
        refresh_token_hash=secret_hash(refresh) if refresh else None,
        client_pk=oauth_request.client.id,
        user_id=oauth_request.user.id if oauth_request.user else None,
        authorization_code_id=code_id,
        family_id=family_id,
        scope=token.get("scope", ""),
        issued_at=now,
        expires_in=int(token["expires_in"]),
        refresh_expires_at=now + REFRESH_TOKEN_TTL if refresh else None,
    ))
    session.commit()


def revoke_family(session: Any, *, family_id: uuid.UUID | None = None,
                  code_id: uuid.UUID | None = None) -> None:
    """Revoke every token of a family, or issued from a code: the answer to a replayed credential."""
    now = utcnow()
    where = Token.family_id == family_id if family_id is not None else Token.authorization_code_id == code_id
    for token in session.scalars(sa.select(Token).where(where)):
        token.revoke(now)
    session.commit()


# ---------------------------------------------------------------- grants


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

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


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    def save_authorization_code(self, code: str, oauth_request: Any) -> None:
        client: Client = oauth_request.client
        user: User = oauth_request.user
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
        return user if user_may_act(user) else None


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        session = get_session()
        row = session.scalar(sa.select(Token).where(Token.refresh_token_hash == secret_hash(refresh_token)))
        if row is None or row.client_pk != self.request.client.id:
            return None
        # Rotation: the old refresh token is spent now; spending it twice revokes the family.
        claimed = session.execute(
            sa.update(Token).where(Token.id == row.id, Token.refresh_revoked_at.is_(None))
            .values(refresh_revoked_at=utcnow())
        ).rowcount
        if not claimed:
            if row.family_id is not None:
                revoke_family(session, family_id=row.family_id)
            return None
        session.commit()
        if row.refresh_expires_at is None or row.refresh_expires_at <= utcnow():
            return None
        return row

    def authenticate_user(self, refresh_token: Token) -> User | None:
        user = refresh_token.user
        return user if user_may_act(user) else None

    def issue_token(self, user: User, refresh_token: Token) -> dict[str, Any]:
        client: Client = self.request.client
        requested = scope_to_list(self.request.payload.scope) or scope_to_list(refresh_token.get_scope())
        scopes = effective_scopes(requested or [], client_scopes=client.scopes, role=user.role)
        if not scopes:
            raise InvalidScopeError()
        return self.generate_token(user=user, scope=" ".join(sorted(scopes)), include_refresh_token=True)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        refresh_token.revoke(utcnow())
        get_session().commit()


# ---------------------------------------------------------------- private_key_jwt


def fetch_jwks(uri: str) -> dict[str, Any]:
    """A client's JWKS from its registered https URI."""
    response = requests.get(uri, timeout=5, allow_redirects=False)
    response.raise_for_status()
    return response.json()


class PrivateKeyJWT(JWTBearerClientAssertion):
    """RFC 7523 client authentication: PS256, ES256 or EdDSA; `aud` the issuer; each `jti` once."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self) -> None:
        super().__init__(validate_jti=True, leeway=30)

    def get_audiences(self) -> list[str]:
        # The issuer (FAPI 2.0); the token endpoint URL too, which RFC 7523 names and most client
        # libraries (Authlib's PrivateKeyJWT among them) send by default.
        return [issuer(), endpoint_url("/oauth/token")]

    def extract_assertion(self, assertion: str) -> tuple[dict, dict]:
        headers, claims = super().extract_assertion(assertion)
        if headers.get("alg") not in ASSERTION_ALGORITHMS:
            raise InvalidClientError(
                description=f"Client assertions must be signed with one of {', '.join(ASSERTION_ALGORITHMS)}."
            )
        return headers, claims

    def resolve_client_public_key(self, client: Client) -> KeySet:
        if client.token_endpoint_auth_method.value != self.CLIENT_AUTH_METHOD:
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        try:
            data = client.public_jwks() or fetch_jwks(client.jwks_uri or "")
            return KeySet.import_key_set(data)
        except (requests.RequestException, ValueError, TypeError, KeyError, JoseError):
            raise InvalidClientError(description="The client's keys could not be read.") from None

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description="The client assertion is not valid.") from exc
        self.verify_claims(token.claims)
        return token.claims

    def verify_claims(self, claims: Any) -> None:
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp - utcnow().timestamp() > ASSERTION_MAX_LIFETIME:
            raise InvalidClientError(description="The client assertion lives too long.")
        super().verify_claims(claims)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        if not isinstance(jti, str) or not jti:
            return False
        session = get_session()
        expires = claims.get("exp")
        used = UsedAssertion(
            client_id=str(claims["sub"]),
            jti_hash=secret_hash(jti),
            expires_at=utcnow() + timedelta(seconds=ASSERTION_MAX_LIFETIME)
            if not isinstance(expires, int | float) else _from_timestamp(expires),
        )
        try:
            with session.begin_nested():
                session.add(used)
        except IntegrityError:
            return False
        session.commit()
        return True


def _from_timestamp(value: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(value, UTC) + timedelta(seconds=60)


# ---------------------------------------------------------------- revocation and introspection


def query_token(token_string: str, hint: str | None) -> tuple[Token | None, str]:
    """The stored token matching a presented access or refresh token, and which of the two it was."""
    session = get_session()
    digest = secret_hash(token_string)
    order = ["access_token", "refresh_token"]
    if hint == "refresh_token":
        order.reverse()
    for kind in order:
        column = Token.access_token_hash if kind == "access_token" else Token.refresh_token_hash
        row = session.scalar(sa.select(Token).where(column == digest))
        if row is not None:
            return row, kind
    return None, ""


def token_is_live(token: Token, kind: str = "access_token") -> bool:
    """Whether a token may still be used: not expired or revoked, and its client, person and
    organisation may still act."""
    now = utcnow()
    if kind == "refresh_token":
        expires = token.refresh_expires_at
        if token.refresh_revoked_at is not None or expires is None or expires <= now:
            return False
    elif token.access_revoked_at is not None or token.expires_at <= now:
        return False
    client = token.client
    if client.is_revoked or not client.organisation.is_active:
        return False
    return token.user_id is None or user_may_act(token.user)


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
        token.revoke(utcnow())
        get_session().commit()


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = AUTH_METHODS

    def authenticate_token(self, oauth_request: Any, client: Client) -> tuple[Token, str] | None:
        self.check_params(oauth_request, client)
        token, kind = query_token(oauth_request.form["token"], oauth_request.form.get("token_type_hint"))
        if token is None or not self.check_permission(token, client, oauth_request):
            return None
        return token, kind

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
        return {
            "active": True,
            "token_type": kind,
            "client_id": token.client.client_id,
            "scope": token.scope,
            "sub": str(token.user_id) if token.user_id else token.client.client_id,
            "iss": issuer(),
            "iat": int(token.issued_at.timestamp()),
            "exp": int(exp.timestamp()) if exp else None,
            "organisation_id": str(org.id),
        }


# ---------------------------------------------------------------- the server and the resource check


class AuthorizationServer(FlaskAuthorizationServer):
    def create_bearer_token_generator(self, config: Any) -> BearerTokenGenerator:
        generator = super().create_bearer_token_generator(config)
        ttl = config["SETTINGS"].access_token_ttl
        generator.expires_generator = lambda client, grant_type: ttl
        generator.refresh_token_generator = generator.access_token_generator
        return generator


class _Validator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> Token | None:
        digest = secret_hash(token_string)
        return get_session().scalar(sa.select(Token).where(Token.access_token_hash == digest))

    def validate_token(self, token: Token | None, scopes: Any, oauth_request: Any) -> None:
        if token is None or not token_is_live(token):
            raise InvalidTokenError(realm=self.realm)


_protector = ResourceProtector()
_protector.register_token_validator(_Validator(realm=REALM))


def authenticate_request() -> Actor:
    """The Actor of the request's bearer token; any failure is 401 invalid_token."""
    if "access_token" in request.args:
        raise InvalidTokenError(
            description="Send the access token in the Authorization header, never in the URL.",
            realm=REALM,
        )
    try:
        token: Token = _protector.validate_request(scopes=None, request=FlaskJsonRequest(request))
    except InvalidTokenError:
        raise
    except OAuth2Error:
        raise InvalidTokenError(description="Send a bearer token in the Authorization header.",
                                realm=REALM) from None
    g.log_client_id = token.client.client_id
    user = token.user
    org = user.organisation if user else token.client.organisation
    return Actor(
        organisation=OrganisationRef(org.id, org.kind),
        client_id=token.client.client_id,
        user_id=user.id if user else None,
        role=user.role if user else None,
        scopes=frozenset(scope_to_list(token.scope) or []),
    )


def create_server(app: Flask) -> AuthorizationServer:
    settings: Settings = app.config["SETTINGS"]
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", sorted(ALL_SCOPES))
    server = AuthorizationServer(app, query_client=query_client, save_token=save_token)
    server.register_grant(ClientCredentialsGrant)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT())
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["referral_api.oauth_server"] = server
    app.extensions["referral_api.authenticate"] = authenticate_request
    assert settings.access_token_ttl > 0
    return server
