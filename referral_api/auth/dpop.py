"""DPoP, sender-constrained tokens (RFC 9449): proofs checked at the token endpoint and at every API
call, tokens bound to the thumbprint of the proof's key (`cnf.jkt`).

A proof is a JWT signed by the client's own key, carried in the `DPoP` header: `typ` dpop+jwt, an
asymmetric `alg` (ES256, PS256, EdDSA), the public key in `jwk`, and the claims `htm` (the method),
`htu` (the URL without query and fragment), `iat` (inside DPOP_PROOF_MAX_AGE_SECONDS), `jti` (once:
its hash is kept until the window closes; `referral-api prune` deletes it then), `ath` (at the API:
base64url SHA-256 of the access token) and, when nonces are required, `nonce`.

Nonces need no storage: a nonce is an HMAC, under a key derived from the index key, of the current
time window (NONCE_WINDOW_SECONDS); the current and the previous window's nonces are accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from flask import current_app, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry
from sqlalchemy.exc import IntegrityError

from ..db import get_session
from ..validators import same_secret
from . import client_cache
from .models import Client, UsedDPoPProof, secret_hash

ALGORITHMS = ["ES256", "PS256", "EdDSA"]
PROOF_TYPE = "dpop+jwt"
NONCE_WINDOW_SECONDS = 300
FUTURE_LEEWAY_SECONDS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


class _ProofRegistry(jws.JWSRegistry):
    """joserfc's registry, the proof's asymmetric algorithms only, with room for an RSA key in `jwk`."""

    max_header_length = 2048


_REGISTRY = _ProofRegistry(algorithms=ALGORITHMS)


class DPoPError(OAuth2Error):
    """An RFC 9449 error: 400 at the token endpoint; 401 with `WWW-Authenticate: DPoP` at the API.

    `use_dpop_nonce` carries a fresh nonce in the `DPoP-Nonce` header."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str, *, error: str | None = None, at_resource: bool = False,
                 nonce: str | None = None) -> None:
        super().__init__(description=description, status_code=401 if at_resource else 400)
        if error:
            self.error = error
        self.at_resource = at_resource
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        headers = super().get_headers()
        if self.at_resource:
            description = (self.get_error_description() or "").replace('"', "'")
            headers.append(("WWW-Authenticate", f'DPoP error="{self.error}", '
                                                f'error_description="{description}", '
                                                f'algs="{" ".join(ALGORITHMS)}"'))
        if self.nonce:
            headers.append(("DPoP-Nonce", self.nonce))
        return headers


def b64url_sha256(value: str) -> str:
    """base64url (no padding) of SHA-256: the `ath` of an access token."""
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _nonce_key() -> bytes:
    index_key = current_app.extensions["referral_api.privacy"].index_key
    return hmac.new(index_key, b"referral-api dpop nonce key", hashlib.sha256).digest()


def nonce_for(window: int) -> str:
    """The server nonce of one time window."""
    mac = hmac.new(_nonce_key(), str(window).encode("ascii"), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(mac).decode("ascii")


def current_nonce(now: float | None = None) -> str:
    return nonce_for(int((now if now is not None else time.time()) // NONCE_WINDOW_SECONDS))


def _nonce_ok(nonce: Any, now: float) -> bool:
    if not isinstance(nonce, str):
        return False
    window = int(now // NONCE_WINDOW_SECONDS)
    return any(same_secret(nonce, nonce_for(w)) for w in (window, window - 1))


def nonce_required(client: Client) -> bool:
    """Whether proofs for this client must carry our nonce (DPOP_NONCE_REQUIRED, or the client's own)."""
    return current_app.config["SETTINGS"].dpop_nonce_required or client.dpop_nonce


def _normalised_url(url: str) -> tuple[str, str, str]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    return scheme, f"{host}:{port}", parts.path or "/"


def _proof_header() -> str:
    values = request.headers.getlist("DPoP")
    if len(values) != 1 or not values[0]:
        raise DPoPError("Send exactly one DPoP proof in the DPoP header.")
    return values[0]


def _verified(proof: str) -> tuple[dict[str, Any], str]:
    """Claims and key thumbprint of a proof whose signature checks out with its own `jwk`."""
    try:
        header = jws.extract_compact(proof.encode("ascii"), registry=_REGISTRY).headers()
    except (JoseError, ValueError, UnicodeError):
        raise DPoPError("The DPoP proof is not a JWT.") from None
    if header.get("typ") != PROOF_TYPE:
        raise DPoPError(f"The DPoP proof's typ must be {PROOF_TYPE}.")
    if header.get("alg") not in ALGORITHMS:
        raise DPoPError(f"The DPoP proof's alg must be one of {', '.join(ALGORITHMS)}.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or any(private in jwk for private in ("d", "p", "q", "k")):
        raise DPoPError("The DPoP proof must carry its public key (and only that) in jwk.")
    try:
        key = JWKRegistry.import_key(jwk)
        claims = jwt.decode(proof, key, algorithms=[header["alg"]], registry=_REGISTRY).claims
        thumbprint = key.thumbprint()
    except (JoseError, ValueError, TypeError, KeyError):
        raise DPoPError("The DPoP proof's signature does not verify with its jwk.") from None
    return claims, thumbprint


def _check_claims(claims: dict[str, Any], *, method: str, url: str, access_token: str | None,
                  max_age: int, now: float) -> None:
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 200:
        raise DPoPError("The DPoP proof needs a jti.")
    if claims.get("htm") != method:
        raise DPoPError("The DPoP proof's htm is not this request's method.")
    htu = claims.get("htu")
    try:  # a port out of range or not a number, a broken IPv6 host: urllib raises ValueError
        same = isinstance(htu, str) and _normalised_url(htu) == _normalised_url(url)
    except ValueError:
        same = False
    if not same:
        raise DPoPError("The DPoP proof's htu is not this request's URL.")
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool) or not (
            now - max_age <= iat <= now + FUTURE_LEEWAY_SECONDS):
        raise DPoPError("The DPoP proof's iat is too old or in the future.")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not same_secret(ath, b64url_sha256(access_token)):
            raise DPoPError("The DPoP proof's ath does not match the access token.")


def _spend_jti(thumbprint: str, jti: str, *, expires_at: datetime) -> bool:
    """Record a proof's jti; False when it was seen before (a replay)."""
    digest = secret_hash(json.dumps([thumbprint, jti]))
    once = ("dpop", digest)
    if client_cache.spent_by_this_request(once):
        return True
    session = get_session()
    try:
        with session.begin_nested():
            session.add(UsedDPoPProof(jti_hash=digest, expires_at=expires_at))
    except IntegrityError:
        return False
    session.commit()
    client_cache.note_spent(once)
    return True


def check_proof(*, client: Client, access_token: str | None = None, bound_to: str | None = None,
                at_resource: bool = False) -> str:
    """Check the request's DPoP proof; the thumbprint of its key. Raises DPoPError."""
    try:
        settings = current_app.config["SETTINGS"]
        now = time.time()
        claims, thumbprint = _verified(_proof_header())
        _check_claims(claims, method=request.method, url=request.base_url, access_token=access_token,
                      max_age=settings.dpop_proof_max_age_seconds, now=now)
        if bound_to is not None and not same_secret(thumbprint, bound_to):
            raise DPoPError("The DPoP proof is signed by another key than the token is bound to.")
        if nonce_required(client) and not _nonce_ok(claims.get("nonce"), now):
            raise DPoPError("Sign the proof again with the nonce of the DPoP-Nonce header.",
                            error="use_dpop_nonce", nonce=current_nonce(now))
        expires = datetime.fromtimestamp(float(claims["iat"]), UTC) + timedelta(
            seconds=settings.dpop_proof_max_age_seconds + FUTURE_LEEWAY_SECONDS)
        if not _spend_jti(thumbprint, claims["jti"], expires_at=expires):
            raise DPoPError("This DPoP proof was used before; make a new one for every request.")
        return thumbprint
    except DPoPError as error:
        error.at_resource = at_resource
        error.status_code = 401 if at_resource else 400
        raise


def bind_token_request(client: Client) -> str | None:
    """At the token endpoint: the key thumbprint to bind the new token to, or None for a bearer token.

    A proof is checked whenever one is sent; a client registered with require_dpop must send one."""
    if "DPoP" not in request.headers:
        if client.require_dpop:
            raise DPoPError("This client's tokens are DPoP-bound: send a DPoP proof.")
        return None
    return check_proof(client=client)
