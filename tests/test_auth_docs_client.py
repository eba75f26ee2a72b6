"""The docs client and redirect URIs (review of the docs client): origins and redirect URIs are parsed,
not prefix-matched; the docs client is MGEC's public client, never a partner's of the same name;
adding redirect URIs to it is checked as at registration and audited; a deployment requiring
private_key_jwt refuses public clients."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.auth import docs_ui
from referral_api.auth.clients import create_client
from referral_api.auth.models import ClientAuthMethod
from referral_api.errors import InvalidPayload
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

GOOD = docs_ui.docs_redirect_uri("https://api.example.org")


def _updates(session):
    query = sa.select(AuditEvent).where(AuditEvent.action == "auth:client:update").order_by(AuditEvent.seq)
    return session.scalars(query).all()


@pytest.mark.parametrize("origin", [
    "http://localhost.evil.com", "http://127.0.0.1.evil.com:8000", "http://localhost@evil.com",
    "http://example.org", "ftp://localhost", "https://", "https://x.org/docs", "https://x.org?a=1",
    "https://x.org#top", "https://user:pw@x.org", "http://localhost:99999", "localhost:5000",
])
def test_a_bad_origin_is_refused_naming_the_field(origin):
    with pytest.raises(InvalidPayload) as refused:
        docs_ui.docs_redirect_uri(origin)
    assert list(refused.value.errors) == ["origin"]


@pytest.mark.parametrize("origin", ["http://localhost:5000", "http://127.0.0.1", "http://[::1]:8000",
                                    "https://api.example.org", "https://api.example.org:8443/"])
def test_a_good_origin_gives_the_redirect_page(origin):
    assert docs_ui.docs_redirect_uri(origin) == origin.rstrip("/") + "/swaggerui/oauth2-redirect.html"


@pytest.mark.parametrize("uri", ["http://localhost.evil.com/cb", "http://127.0.0.1.nip.io/cb",
                                 "http://localhost@evil.com/cb", "https://x.org/cb#frag",
                                 "javascript:alert(1)",
                                 # longer than an authorization code keeps (a 500 at every sign-in)
                                 "https://app.example.org/callback/" + "a" * 480])
def test_a_client_registration_refuses_a_redirect_uri_that_only_looks_loopback(session, uri):
    org = h.organisation(session)
    with pytest.raises(InvalidPayload) as refused:
        create_client(session, organisation=str(org.id), name="x", scopes=["referrals:read"],
                      grant_types=["authorization_code"], redirect_uris=[uri])
    assert "redirect_uris" in refused.value.errors


def test_a_client_registration_takes_loopback_http_and_https(session):
    org = h.organisation(session)
    uris = ["http://localhost:8000/cb", "http://127.0.0.1/cb", "http://[::1]:9/cb", "https://x.org/cb?a=1"]
    issued = create_client(session, organisation=str(org.id), name="x", scopes=["referrals:read"],
                           grant_types=["authorization_code"], redirect_uris=uris)
    assert issued.client.redirect_uris.split() == uris


def test_the_docs_client_is_mgecs_public_client_never_a_confidential_one_of_the_same_name(session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    partner = h.organisation(session)
    for org in (partner, mgec):  # confidential clients that merely carry the name
        create_client(session, organisation=str(org.id), name=docs_ui.DOCS_CLIENT_NAME,
                      scopes=["referrals:read"], grant_types=["authorization_code"], redirect_uris=["https://partner.example/cb"])
    assert docs_ui.find_docs_client(session) is None
    docs = docs_ui.register_docs_client(session, redirect_uris=[GOOD])
    assert docs.organisation_id == mgec.id and docs.token_endpoint_auth_method is ClientAuthMethod.NONE
    assert docs.redirect_uris == GOOD and docs_ui.find_docs_client(session).id == docs.id


def test_adding_redirect_uris_to_the_docs_client_is_checked_and_audited(session):
    h.organisation(session, OrganisationKind.MGEC)
    docs = docs_ui.register_docs_client(session, redirect_uris=[GOOD])
    with pytest.raises(InvalidPayload) as refused:
        docs_ui.register_docs_client(session, redirect_uris=["http://localhost.evil.com/swaggerui/x.html"])
    assert "redirect_uris" in refused.value.errors
    session.refresh(docs)
    assert docs.redirect_uris == GOOD and _updates(session) == []
    local = docs_ui.docs_redirect_uri("http://127.0.0.1:5000")
    docs_ui.register_docs_client(session, redirect_uris=[local, GOOD])
    docs_ui.register_docs_client(session, redirect_uris=[local])  # nothing new: nothing recorded
    [event] = _updates(session)
    assert str(event.resource_id) == str(docs.id)
    assert event.details == {"client_id": docs.client_id, "redirect_uris_before": [GOOD],
                             "redirect_uris_after": [GOOD, local]}
    assert docs.redirect_uris.split() == [GOOD, local]


def test_a_deployment_requiring_private_key_jwt_refuses_public_clients(session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    with pytest.raises(InvalidPayload) as refused:
        create_client(session, organisation=str(mgec.id), name="x", scopes=["referrals:read"],
                      grant_types=["authorization_code"], redirect_uris=[GOOD],
                      auth_method=ClientAuthMethod.NONE, require_private_key_jwt=True)
    assert "public client (auth method none) is refused" in refused.value.errors["auth_method"][0]
    with pytest.raises(InvalidPayload) as docs_refused:
        docs_ui.register_docs_client(session, redirect_uris=[GOOD], require_private_key_jwt=True)
    assert "public client (auth method none)" in docs_refused.value.errors["auth_method"][0]
    assert docs_ui.find_docs_client(session) is None


def test_a_deployment_requiring_private_key_jwt_refuses_a_public_client_at_the_token_endpoint(
        app, session, tmp_path):
    from referral_api import create_app
    from referral_api.cli import cli
    from referral_api.db import database

    h.organisation(session, OrganisationKind.MGEC)
    docs = docs_ui.register_docs_client(session, redirect_uris=[GOOD])  # registered before the switch
    strict = create_app({"database_url": database(app).url, "instance_path": str(tmp_path),
                         "require_private_key_jwt": True, "TESTING": True})
    database(strict).sessionmaker = database(app).sessionmaker  # the test's connection
    form = {"grant_type": "authorization_code", "code": "x", "redirect_uri": GOOD,
            "code_verifier": "v" * 43, "client_id": docs.client_id}
    answer = strict.test_client().post("/oauth/token", data=form)
    assert answer.status_code == 401 and answer.get_json()["error"] == "invalid_client"
    relaxed = app.test_client().post("/oauth/token", data=form)
    assert relaxed.get_json()["error"] == "invalid_grant"  # the client is known there; the code is not
    created = strict.test_cli_runner().invoke(cli, ["clients", "docs-client", "--origin", "https://b.example"])
    assert created.exit_code == 1 and "public client (auth method none)" in created.output


def test_a_deployment_requiring_private_key_jwt_refuses_a_public_client_at_authorize(app, session, tmp_path):
    from referral_api import create_app
    from referral_api.db import database

    h.organisation(session, OrganisationKind.MGEC)
    docs = docs_ui.register_docs_client(session, redirect_uris=[GOOD])
    strict = create_app({"database_url": database(app).url, "instance_path": str(tmp_path),
                         "require_private_key_jwt": True, "TESTING": True})
    database(strict).sessionmaker = database(app).sessionmaker
    _verifier, challenge = h.pkce_pair()
    params = {**h.authorize_params(docs.client_id, challenge, scope="referrals:read"), "redirect_uri": GOOD}
    answer = strict.test_client().get("/oauth/authorize", query_string=params)
    assert answer.status_code == 302 and "error=unauthorized_client" in answer.headers["Location"]
    assert app.test_client().get("/oauth/authorize", query_string=params).status_code == 200  # the form
