"""DPoP proofs (RFC 9449) made with joserfc, as a partner's system would make them."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from joserfc import jwt

from tests import oauth_helpers as h

ORIGIN = "http://localhost"


def ath(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def proof(key, method: str, url: str, *, token: str | None = None, nonce: str | None = None,
          iat: float | None = None, jti: str | None = None, alg: str = "ES256", typ: str = "dpop+jwt",
          jwk: dict | None = None, **extra) -> str:
    claims = {"jti": jti or secrets.token_urlsafe(16), "htm": method, "htu": url,
              "iat": int(iat if iat is not None else time.time()), **extra}
    if token is not None:
        claims["ath"] = ath(token)
    if nonce is not None:
        claims["nonce"] = nonce
    header = {"typ": typ, "alg": alg, "jwk": jwk if jwk is not None else key.as_dict(private=False)}
    return jwt.encode(header, claims, key, algorithms=[alg])


def dpop_client(session, org=None, *, nonce=False, scopes=h.PARTNER_SCOPES):
    """A client-credentials client registered with --require-dpop (and, with nonce, --dpop-nonce)."""
    from referral_api.auth import services
    from referral_api.auth.models import ClientAuthMethod

    issued = services.create_client(
        session, organisation=str((org or h.organisation(session)).id), name=f"dpop {secrets.token_hex(3)}",
        scopes=scopes.split(), auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
        require_dpop=True, dpop_nonce=nonce,
    )
    return issued.client, issued.client_secret


def token_request(http, client, secret, key=None, **proof_kwargs):
    headers = h.basic(client.client_id, secret)
    if key is not None:
        headers["DPoP"] = proof(key, "POST", ORIGIN + "/oauth/token", **proof_kwargs)
    return http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)


def dpop_headers(token: str, key, method: str = "GET", path: str = "/api/v1/me", **proof_kwargs) -> dict:
    return {"Authorization": f"DPoP {token}",
            "DPoP": proof(key, method, ORIGIN + path, token=token, **proof_kwargs)}
