"""Tokens for the client: fetched by client credentials (secret or private_key_jwt), renewed before
they expire, and bound to a DPoP key (RFC 9449) when asked or when the server requires it."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from .errors import TokenError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
RENEW_BEFORE_SECONDS = 30
_ALG_OF_KEY = {"EC": "ES256", "RSA": "PS256", "OKP": "EdDSA"}


def private_key(value: Any) -> ECKey | RSAKey | OKPKey | None:
    """A private key from a PEM string, a JWK dict or a joserfc key; None for a client secret."""
    if isinstance(value, ECKey | RSAKey | OKPKey):
        return value
    if isinstance(value, dict):
        return JWKRegistry.import_key(value)
    pem = value.encode() if isinstance(value, str) else value
    if isinstance(pem, bytes) and b"-----BEGIN" in pem:
        for cls in (ECKey, RSAKey, OKPKey):
            try:
                return cls.import_key(pem)
            except (ValueError, TypeError, JoseError):
                continue
        raise ValueError("the PEM is not an EC, RSA or Ed25519 private key")
    return None


def algorithm(key: ECKey | RSAKey | OKPKey) -> str:
    return _ALG_OF_KEY[key.key_type]


def _b64url_sha256(value: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(value.encode()).digest()).rstrip(b"=").decode()


class DPoPSigner:
    """Makes DPoP proofs with one key, remembering the server's latest nonce."""

    def __init__(self, key: ECKey | RSAKey | OKPKey | None = None) -> None:
        self.key = key or ECKey.generate_key("P-256", private=True)
        self.alg = algorithm(self.key)
        self.nonce: str | None = None

    def proof(self, method: str, url: str, *, access_token: str | None = None) -> str:
        parts = urlsplit(url)
        claims: dict[str, Any] = {"jti": secrets.token_urlsafe(24), "htm": method.upper(),
                                  "htu": urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                                  "iat": int(time.time())}
        if access_token is not None:
            claims["ath"] = _b64url_sha256(access_token)
        if self.nonce:
            claims["nonce"] = self.nonce
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key, algorithms=[self.alg])

    def learn_nonce(self, response: requests.Response) -> bool:
        """Keep the answer's DPoP-Nonce; True when the answer asks to sign again with it."""
        nonce = response.headers.get("DPoP-Nonce")
        if nonce:
            self.nonce = nonce
        if response.status_code not in (400, 401) or not nonce:
            return False
        challenge = response.headers.get("WWW-Authenticate", "")
        try:
            error = response.json().get("error")
        except ValueError:
            error = None
        return error == "use_dpop_nonce" or 'error="use_dpop_nonce"' in challenge


class TokenSource:
    """The current access token of one client; thread-safe; renewed RENEW_BEFORE_SECONDS early."""

    def __init__(self, http: requests.Session, token_url: str, client_id: str, key_or_secret: Any, *,
                 scope: str | None = None, dpop: bool | None = None,
                 dpop_key: ECKey | RSAKey | OKPKey | None = None, timeout: float = 30.0) -> None:
        self.http = http
        self.token_url = token_url
        self.client_id = client_id
        self.key = private_key(key_or_secret)
        self.secret = None if self.key is not None else str(key_or_secret)
        self.scope = scope
        self.auto_dpop = dpop is None
        self.dpop = DPoPSigner(dpop_key) if dpop or dpop_key is not None else None
        self.timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    @property
    def scheme(self) -> str:
        return "DPoP" if self.dpop is not None else "Bearer"

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at - RENEW_BEFORE_SECONDS:
                self._fetch()
            if self._token is None:  # _fetch sets it or raises
                raise TokenError(0, "no_token")
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _form(self) -> tuple[dict[str, str], tuple[str, str] | None]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        if self.key is None:
            return form, (self.client_id, self.secret or "")
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.token_url, "iat": now,
                  "exp": now + 60, "jti": secrets.token_urlsafe(24)}
        alg = algorithm(self.key)
        header = {"alg": alg, **({"kid": self.key.kid} if self.key.kid else {})}
        form.update(client_assertion_type=ASSERTION_TYPE,
                    client_assertion=jwt.encode(header, claims, self.key, algorithms=[alg]))
        return form, None

    def _post(self) -> requests.Response:
        form, basic = self._form()
        headers = {"DPoP": self.dpop.proof("POST", self.token_url)} if self.dpop else {}
        return self.http.post(self.token_url, data=form, auth=basic, headers=headers, timeout=self.timeout)

    def _fetch(self) -> None:
        response = self._post()
        if self.dpop is not None and self.dpop.learn_nonce(response):
            response = self._post()  # signed again with the server's nonce
        error = _token_error(response)
        if error == "invalid_dpop_proof" and self.dpop is None and self.auto_dpop:
            self.dpop = DPoPSigner()  # the client is registered for DPoP: bind to a new key
            self._fetch()
            return
        if error is not None:
            body = _json(response)
            raise TokenError(response.status_code, error, body.get("error_description"),
                             retry_after=response.headers.get("Retry-After"))
        body = response.json()
        self._token = body["access_token"]
        self._expires_at = time.monotonic() + float(body.get("expires_in", 300))


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_error(response: requests.Response) -> str | None:
    if response.status_code == 200:
        return None
    return str(_json(response).get("error") or f"http_{response.status_code}")
