"""Interoperability: off-the-shelf OAuth clients against the app served on 127.0.0.1 by a real server."""

from __future__ import annotations

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from referral_api.access import Role
from referral_api.db import database
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

pytestmark = pytest.mark.slow


@pytest.fixture
def served(live_server):
    base, app = live_server
    session = database(app).sessionmaker()
    try:
        yield base, session
    finally:
        session.close()


def _me(http, base):
    response = http.get(base + "/api/v1/me", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_authlib_client_credentials_with_client_secret_basic(served):
    base, session = served
    org = h.organisation(session, OrganisationKind.EMBASSY)
    c, secret = h.secret_client(session, org)
    http = OAuth2Session(c.client_id, secret, scope="referrals:read cases:status",
                         token_endpoint_auth_method="client_secret_basic")
    http.trust_env = False
    token = http.fetch_token(base + "/oauth/token", grant_type="client_credentials", timeout=10)
    assert token["token_type"] == "Bearer" and token["expires_in"] == 900
    me = _me(http, base)
    assert me["client_id"] == c.client_id and me["scopes"] == ["cases:status", "referrals:read"]


@pytest.mark.parametrize(("make_key", "alg"), [(h.ec_key, "ES256"), (h.rsa_key, "PS256")])
def test_authlib_client_credentials_with_private_key_jwt(served, make_key, alg):
    base, session = served
    key = make_key()
    c = h.jwt_client(session, h.organisation(session, OrganisationKind.POLICE), key)
    http = OAuth2Session(c.client_id, key, scope="referrals:submit",
                         token_endpoint_auth_method="private_key_jwt")
    http.trust_env = False
    # Audience: the issuer (the default of Authlib's PrivateKeyJWT would be the token endpoint URL).
    http.register_client_auth_method(PrivateKeyJWT(base, alg=alg))
    http.fetch_token(base + "/oauth/token", grant_type="client_credentials", timeout=10)
    assert _me(http, base)["scopes"] == ["referrals:submit"]
    # The library's default audience, the token endpoint URL, is accepted too; each assertion once.
    second = OAuth2Session(c.client_id, key, token_endpoint_auth_method="private_key_jwt")
    second.trust_env = False
    second.register_client_auth_method(PrivateKeyJWT(alg=alg))
    second.fetch_token(base + "/oauth/token", grant_type="client_credentials", timeout=10)
    assert _me(second, base)["client_id"] == c.client_id


def test_requests_oauthlib_backend_application_client(served, monkeypatch):
    from oauthlib.oauth2 import BackendApplicationClient
    from requests_oauthlib import OAuth2Session as OAuthlibSession

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on loopback, in this test only
    base, session = served
    c, secret = h.secret_client(session, h.organisation(session, OrganisationKind.IOM))
    http = OAuthlibSession(client=BackendApplicationClient(client_id=c.client_id))
    http.trust_env = False
    token = http.fetch_token(token_url=base + "/oauth/token", client_id=c.client_id, client_secret=secret,
                             timeout=10)
    assert token["access_token"]
    assert _me(http, base)["organisation"]["kind"] == "iom"


def test_authorization_code_with_pkce_through_the_login_form(served):
    base, session = served
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)

    oauth = OAuth2Session(c.client_id, secret, redirect_uri=h.REDIRECT_URI,
                          scope="referrals:read referrals:review", code_challenge_method="S256")
    oauth.trust_env = False
    verifier = h.pkce_pair()[0]
    url, state = oauth.create_authorization_url(base + "/oauth/authorize", code_verifier=verifier)

    browser = requests.Session()
    browser.trust_env = False
    page = browser.get(url, timeout=10)
    assert page.status_code == 200 and "<form" in page.text
    form = h.hidden_fields(page.text)
    assert form["code_challenge_method"] == "S256"
    form.update(email=user.email, password=h.PASSWORD, totp=totp.now())
    answer = browser.post(base + "/oauth/authorize", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert location.startswith(h.REDIRECT_URI) and f"state={state}" in location

    token = oauth.fetch_token(base + "/oauth/token", authorization_response=location,
                              code_verifier=verifier, timeout=10)
    assert token["refresh_token"] and token["scope"] == "referrals:read referrals:review"
    me = _me(oauth, base)
    assert me["user_id"] == str(user.id) and me["role"] == "mgec_coordinator"
    assert "referrals:review" in me["scopes"]

    # Refresh with the library: rotated, and the new token works.
    refreshed = oauth.refresh_token(base + "/oauth/token", timeout=10)
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert _me(oauth, base)["user_id"] == str(user.id)


@pytest.mark.postgres_only
def test_a_code_exchanged_twice_at_once_gives_one_token(served):
    """The code is claimed with one conditional UPDATE: of two concurrent exchanges exactly one wins."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    base, session = served
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    verifier, challenge = h.pkce_pair()
    browser = requests.Session()
    browser.trust_env = False
    params = h.authorize_params(c.client_id, challenge)
    page = browser.get(base + "/oauth/authorize", params=params, timeout=10)
    form = {**h.hidden_fields(page.text), "email": user.email, "password": h.PASSWORD, "totp": totp.now()}
    answer = browser.post(base + "/oauth/authorize", data=form, allow_redirects=False, timeout=10)
    code = h.code_from(answer.headers["Location"])["code"]

    barrier = threading.Barrier(2)

    def exchange(_):
        barrier.wait()
        return requests.post(base + "/oauth/token", auth=(c.client_id, secret), timeout=10, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
            "code_verifier": verifier})

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(exchange, range(2)))
    assert sorted(r.status_code for r in results) == [200, 400]
    assert [r.json()["error"] for r in results if r.status_code == 400] == ["invalid_grant"]
