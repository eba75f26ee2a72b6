"""private_key_jwt (RFC 7523) client authentication: PS256, ES256 or EdDSA; `aud` the issuer (or
the token endpoint URL); each `jti` once; keys from the registered JWKS or JWKS URI."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import current_app
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy.exc import IntegrityError

from ..db import get_session, utcnow
from . import client_cache, jwks
from .models import Client, UsedAssertion, secret_hash
from .store import endpoint_url, issuer

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
ASSERTION_ALGORITHMS = ["PS256", "ES256", "EdDSA"]
ASSERTION_MAX_LIFETIME = 3660  # seconds an assertion may claim to live (client libraries sign for 1 hour)


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

    def resolve_client_public_key(self, client: Client) -> KeySet | Callable[[Any], KeySet]:
        if client.token_endpoint_auth_method.value != self.CLIENT_AUTH_METHOD:
            raise InvalidClientError(description="This client does not authenticate with private_key_jwt.")
        registered = client.public_jwks()
        if registered is not None:
            return _key_set(registered)
        uri = client.jwks_uri or ""
        settings = current_app.config["SETTINGS"]

        def from_uri(token: Any) -> KeySet:
            # called with the assertion's header once it is parsed: its kid decides whether to refetch
            kid = token.headers().get("kid")
            try:
                data = jwks.CACHE.key_set(
                    uri, kid=kid if isinstance(kid, str) else None,
                    allow_http_loopback=settings.webhooks_allow_http_loopback,
                    upper=settings.jwks_cache_max_seconds,
                )
            except jwks.JwksError:
                raise InvalidClientError(description="The client's keys could not be read.") from None
            return _key_set(data)

        return from_uri

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> dict[str, Any]:
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError) as exc:
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
        digest = secret_hash(jti)
        once = ("jti", str(claims["sub"]), digest)
        if client_cache.spent_by_this_request(once):
            return True
        session = get_session()
        expires = claims.get("exp")
        used = UsedAssertion(
            client_id=str(claims["sub"]),
            jti_hash=digest,
            expires_at=utcnow() + timedelta(seconds=ASSERTION_MAX_LIFETIME)
            if not isinstance(expires, int | float) else _from_timestamp(expires),
        )
        try:
            with session.begin_nested():
                session.add(used)
        except IntegrityError:
            return False
        session.commit()
        client_cache.note_spent(once)
        return True


def _key_set(data: dict[str, Any]) -> KeySet:
    try:
        return KeySet.import_key_set(data)
    except (ValueError, TypeError, KeyError, JoseError):
        raise InvalidClientError(description="The client's keys could not be read.") from None


def _from_timestamp(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC) + timedelta(seconds=60)
