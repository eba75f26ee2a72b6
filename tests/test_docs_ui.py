"""Swagger UI at /docs: OAuth 2.0 configured with PKCE and the public docs client, and that client
itself (authorization code with PKCE and no secret; never client credentials, never without PKCE)."""

from __future__ import annotations

import json
import re

import pytest

from referral_api.access import Role
from referral_api.auth import docs_ui
from referral_api.auth.models import ClientAuthMethod
from referral_api.errors import InvalidPayload
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

DOCS_REDIRECT = "http://localhost/swaggerui/oauth2-redirect.html"  # the test client's origin


def _init_oauth(html: str) -> dict:
    return json.loads(re.search(r"ui\.initOAuth\((\{.*?\})\);", html).group(1))


def test_the_docs_page_uses_pkce_and_the_docs_client_of_its_origin(client, session):
    h.organisation(session, OrganisationKind.MGEC)
    before = client.get("/docs").get_data(as_text=True)
    assert _init_oauth(before) == {"usePkceWithAuthorizationCodeGrant": True, "appName": "MGEC referral API"}
    elsewhere = docs_ui.register_docs_client(session, redirect_uris=[docs_ui.docs_redirect_uri("https://x.org")])
    assert "clientId" not in _init_oauth(client.get("/docs").get_data(as_text=True))  # not for this origin
    docs = docs_ui.register_docs_client(session, redirect_uris=[DOCS_REDIRECT])
    assert docs.client_id == elsewhere.client_id and docs.redirect_uris.split()[-1] == DOCS_REDIRECT
    page = client.get("/docs")
    html = page.get_data(as_text=True)
    assert _init_oauth(html)["clientId"] == docs.client_id
    assert _init_oauth(html)["usePkceWithAuthorizationCodeGrant"] is True
    assert f'oauth2RedirectUrl: "{DOCS_REDIRECT}"' in html
    assert docs.token_endpoint_auth_method is ClientAuthMethod.NONE and docs.client_secret_hash is None


def _code(client, docs, user, totp, challenge):
    params = {**h.authorize_params(docs.client_id, challenge, scope="referrals:read cases:read"),
              "redirect_uri": DOCS_REDIRECT}
    login = h.login_with_test_client(client, params, email=user.email, totp_code=totp.now() if totp else "")
    assert login.status_code == 302, login.get_data(as_text=True)
    return h.code_from(login.headers["Location"])["code"]


def test_the_public_docs_client_gets_a_token_with_pkce_and_no_secret(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    docs = docs_ui.register_docs_client(session, redirect_uris=[DOCS_REDIRECT])
    user, totp = h.person(session, mgec, Role.MGEC_CASEWORKER)  # no TOTP: two logins in one step
    verifier, challenge = h.pkce_pair()
    code = _code(client, docs, user, totp, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": DOCS_REDIRECT,
            "client_id": docs.client_id}
    wrong = client.post("/oauth/token", data={**form, "code_verifier": "x" * 43})
    assert wrong.status_code == 400 and wrong.get_json()["error"] == "invalid_grant"
    # the code was claimed by the refused attempt: a fresh one, with the right verifier
    code = _code(client, docs, user, totp, challenge)
    ok = client.post("/oauth/token", data={**form, "code": code, "code_verifier": verifier})
    assert ok.status_code == 200, ok.get_json()
    assert set(ok.get_json()["scope"].split()) == {"referrals:read", "cases:read"}
    me = client.get("/api/v1/me", headers=h.bearer(ok.get_json()["access_token"]))
    assert me.status_code == 200 and me.get_json()["user_id"] == str(user.id)


def test_the_public_client_never_gets_client_credentials(client, session):
    h.organisation(session, OrganisationKind.MGEC)
    docs = docs_ui.register_docs_client(session, redirect_uris=[DOCS_REDIRECT])
    form = {"grant_type": "client_credentials", "client_id": docs.client_id}
    answer = client.post("/oauth/token", data=form)
    assert answer.status_code in {400, 401}
    assert answer.get_json()["error"] in {"invalid_client", "unauthorized_client"}
    assert "access_token" not in answer.get_json()


def test_a_public_client_is_refused_any_grant_but_the_authorization_code(session):
    from referral_api.auth.clients import create_client

    org = h.organisation(session, OrganisationKind.MGEC)
    with pytest.raises(InvalidPayload) as refused:
        create_client(session, organisation=str(org.id), name="x", scopes=["referrals:read"],
                      grant_types=["client_credentials"], auth_method=ClientAuthMethod.NONE)
    assert "grant_types" in refused.value.errors
