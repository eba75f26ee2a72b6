"""A person signs in through MGEC's own applications or their own organisation's, never through another
organisation's: that application's token would act as the person."""

from __future__ import annotations

import sqlalchemy as sa

from referral_api.access import Role
from referral_api.auth.models import Token
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

SCOPE = "referrals:read cases:read"


def _mgec_and_police(session):
    return h.organisation(session, OrganisationKind.MGEC), h.organisation(session, OrganisationKind.POLICE)


def _police_client(session, police):
    return h.secret_client(session, police, scopes=SCOPE, grant_types="authorization_code refresh_token",
                           redirect_uris=[h.REDIRECT_URI])


def _sign_in(client, c, user, totp):
    verifier, challenge = h.pkce_pair()
    answer = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge, scope=SCOPE),
                                      email=user.email, totp_code=totp.now() if totp else "")
    return answer, verifier


def test_a_person_of_mgec_is_not_signed_in_through_the_polices_application(client, session):
    mgec, police = _mgec_and_police(session)
    c, _secret = _police_client(session, police)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    answer, _verifier = _sign_in(client, c, user, totp)
    assert answer.status_code == 302
    params = h.code_from(answer.headers["Location"])
    assert "code" not in params and params["error"] == "access_denied", params
    assert answer.headers["Location"].startswith(h.REDIRECT_URI) and params["state"] == "xyz"
    assert session.scalar(sa.select(Token).where(Token.user_id == user.id)) is None


def test_a_police_officer_signs_in_through_the_polices_own_application(client, session):
    police = h.organisation(session, OrganisationKind.POLICE)
    c, secret = _police_client(session, police)
    user, totp = h.person(session, police, Role.PARTNER_OFFICER)
    answer, verifier = _sign_in(client, c, user, totp)
    code = h.code_from(answer.headers["Location"])["code"]
    token = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier})
    assert token.status_code == 200, token.get_json()
    me = client.get("/api/v1/me", headers=h.bearer(token.get_json()["access_token"])).get_json()
    assert me["organisation"]["id"] == str(police.id)


def test_a_token_of_a_person_through_another_organisations_application_no_longer_acts(client, session):
    """One issued before this rule (or by a client moved between organisations) is refused at use."""
    mgec, police = _mgec_and_police(session)
    c, secret = _police_client(session, police)
    user, totp = h.person(session, police, Role.PARTNER_OFFICER)
    answer, verifier = _sign_in(client, c, user, totp)
    token = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": h.code_from(answer.headers["Location"])["code"],
        "redirect_uri": h.REDIRECT_URI, "code_verifier": verifier}).get_json()
    user.organisation_id = mgec.id  # as if the person had signed in as a person of another organisation
    session.commit()
    assert client.get("/api/v1/me", headers=h.bearer(token["access_token"])).status_code == 401
    refreshed = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
    assert refreshed.status_code == 400, refreshed.get_json()
