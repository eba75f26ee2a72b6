"""Helpers for the OAuth tests: clients, people, keys, PKCE pairs, and walking the login form."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import pyotp
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from referral_api.access import Role
from referral_api.auth import services
from referral_api.organisations.models import Organisation, OrganisationKind

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "http://127.0.0.1:8000/callback"
PARTNER_SCOPES = "referrals:submit referrals:read cases:read cases:status"


def organisation(session, kind=OrganisationKind.NGO, name=None) -> Organisation:
    org = Organisation(name=name or f"{kind.value} {secrets.token_hex(3)}", kind=kind,
                       country="MN" if kind is OrganisationKind.MGEC else "KR")
    session.add(org)
    session.commit()
    return org


def secret_client(session, org, *, scopes=PARTNER_SCOPES, grant_types="client_credentials",
                  auth_method="client_secret_basic", redirect_uris=()):
    from referral_api.auth.models import ClientAuthMethod

    issued = services.create_client(
        session, organisation=str(org.id), name=f"client {secrets.token_hex(3)}", scopes=scopes.split(),
        grant_types=grant_types.split(), redirect_uris=list(redirect_uris),
        auth_method=ClientAuthMethod(auth_method),
    )
    return issued.client, issued.client_secret


def jwt_client(session, org, key, *, scopes=PARTNER_SCOPES):
    from referral_api.auth.models import ClientAuthMethod

    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    issued = services.create_client(
        session, organisation=str(org.id), name=f"jwt client {secrets.token_hex(3)}", scopes=scopes.split(),
        auth_method=ClientAuthMethod.PRIVATE_KEY_JWT, jwks=jwks,
    )
    return issued.client


def login_client(session, org, *, scopes="referrals:read referrals:review cases:read admin audit:read"):
    return secret_client(session, org, scopes=scopes,
                         grant_types="authorization_code refresh_token", redirect_uris=[REDIRECT_URI])


def person(session, org, role=Role.MGEC_COORDINATOR, email=None):
    issued = services.create_user(session, organisation=str(org.id),
                                  email=email or f"{secrets.token_hex(4)}@example.org",
                                  role=role, password=PASSWORD, name="A person")
    totp = pyotp.parse_uri(issued.totp_uri) if issued.totp_uri else None
    return issued.user, totp


def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)


def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "r1"}, private=True)


def ed_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": "e1"}, private=True)


def assertion(client_id, key, *, aud, alg="ES256", jti=None, exp_in=60, **extra) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": aud, "iat": now, "exp": now + exp_in,
              "jti": jti or secrets.token_urlsafe(16), **extra}
    return jwt.encode({"alg": alg}, claims, key, algorithms=[alg])


def assertion_form(client_id, key, **kwargs) -> dict:
    return {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion(client_id, key, **kwargs)}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def basic(client_id, secret) -> dict:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token) -> dict:
    return {"Authorization": f"Bearer {token}"}


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the login form has no CSRF token"
    return match.group(1)


def hidden_fields(html: str) -> dict:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


def code_from(location: str) -> dict:
    query = parse_qs(urlsplit(location).query)
    return {k: v[0] for k, v in query.items()}


def authorize_params(client_id, challenge, *, scope="referrals:read referrals:review", state="xyz",
                     method="S256") -> dict:
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
              "scope": scope, "state": state}
    if challenge is not None:
        params["code_challenge"] = challenge
    if method is not None:
        params["code_challenge_method"] = method
    return params


def login_with_test_client(http, params, *, email, password=PASSWORD, totp_code=""):
    """GET the form, POST it as a browser would; return the POST's response."""
    page = http.get("/oauth/authorize", query_string=params)
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    form = hidden_fields(html)
    form.update(email=email, password=password, totp=totp_code)
    return http.post("/oauth/authorize", data=form)
