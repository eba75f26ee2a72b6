"""People's login: the form, TOTP, lock-out, authorization code with PKCE S256, refresh rotation."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from referral_api.access import Role
from referral_api.auth.models import AuthorizationCode, Token, User
from referral_api.auth.services import MAX_FAILED_LOGINS
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h


def _setup(session, role=Role.MGEC_COORDINATOR):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec)
    user, totp = h.person(session, mgec, role)
    return c, secret, user, totp


def _code(client, c, user, totp, *, challenge, scope="referrals:read referrals:review"):
    response = h.login_with_test_client(
        client, h.authorize_params(c.client_id, challenge, scope=scope),
        email=user.email, totp_code=totp.now() if totp else "",
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    assert response.headers["Location"].startswith(h.REDIRECT_URI)
    params = h.code_from(response.headers["Location"])
    assert params["state"] == "xyz"
    return params["code"]


def _exchange(client, c, secret, code, verifier):
    return client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier,
    })


def test_login_form_is_plain_accessible_html_with_csrf(client, session):
    c, _secret, _user, _totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    page = client.get("/oauth/authorize", query_string=h.authorize_params(c.client_id, challenge))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert '<html lang="en">' in html and "<script" not in html
    for field in ("email", "password", "totp"):
        assert f'<label for="{field}">' in html and f'id="{field}"' in html
    assert h.csrf_token(html)
    assert "form-action 'self' http://127.0.0.1:8000" in page.headers["Content-Security-Policy"]


def test_code_flow_for_a_coordinator_with_totp(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    response = _exchange(client, c, secret, code, verifier)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["scope"] == "referrals:read referrals:review" and body["refresh_token"]
    me = client.get("/api/v1/me", headers=h.bearer(body["access_token"])).get_json()
    assert me["user_id"] == str(user.id) and me["role"] == "mgec_coordinator"
    assert me["scopes"] == ["referrals:read", "referrals:review"]


def test_scopes_are_requested_and_clients_and_roles(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec, scopes="referrals:read referrals:review cases:read")
    user, _totp = h.person(session, mgec, Role.MGEC_CASEWORKER)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, None, challenge=challenge,
                 scope="referrals:read referrals:review admin")
    body = _exchange(client, c, secret, code, verifier).get_json()
    # admin: not the client's; referrals:review: not a caseworker's.
    assert body["scope"] == "referrals:read"


def test_missing_or_wrong_totp_is_refused(client, session):
    c, _secret, user, _totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    for code in ("", "000000"):
        response = h.login_with_test_client(client, params, email=user.email, totp_code=code)
        assert response.status_code == 400
        assert "not right" in response.get_data(as_text=True)


def test_totp_code_is_accepted_once(client, session):
    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    code = totp.now()
    assert h.login_with_test_client(client, params, email=user.email, totp_code=code).status_code == 302
    assert h.login_with_test_client(client, params, email=user.email, totp_code=code).status_code == 400


def test_partner_officer_logs_in_without_totp(client, session):
    # A police or NGO officer; an embassy's officers need TOTP (tests/test_console_partner.py).
    org = h.organisation(session, OrganisationKind.POLICE)
    c, _secret = h.login_client(session, org, scopes="referrals:read cases:read")
    user, totp = h.person(session, org, Role.PARTNER_OFFICER)
    assert totp is None
    _verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge,
                                                                   scope="referrals:read"), email=user.email)
    assert response.status_code == 302 and "code=" in response.headers["Location"]


def test_form_without_csrf_token_is_refused(client, session):
    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    client.get("/oauth/authorize", query_string=params)
    response = client.post("/oauth/authorize", data={**params, "email": user.email, "password": h.PASSWORD,
                                                     "totp": totp.now(), "csrf_token": "forged"})
    assert response.status_code == 400 and "Location" not in response.headers


def test_account_locks_after_repeated_failures(client, session):
    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    for _ in range(MAX_FAILED_LOGINS):
        wrong = h.login_with_test_client(client, params, email=user.email, password="wrong password!",
                                         totp_code=totp.now())
        assert wrong.status_code == 400
    session.expire_all()
    assert session.get(User, user.id).locked_until is not None
    # Even the right password and code are refused while locked.
    locked = h.login_with_test_client(client, params, email=user.email, totp_code=totp.now())
    assert locked.status_code == 400


def test_login_form_is_rate_limited_per_address(base_app, client, session):
    c, _secret, _user, _totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    base_app.config["AUTH_RATELIMIT_LOGIN_PER_ADDRESS"] = "2/minute"
    try:
        statuses = [h.login_with_test_client(client, params, email="nobody@example.org").status_code
                    for _ in range(3)]
        assert statuses == [400, 400, 429]
    finally:
        base_app.config.pop("AUTH_RATELIMIT_LOGIN_PER_ADDRESS")


def test_pkce_plain_is_invalid_request(client, session):
    c, _secret, _user, _totp = _setup(session)
    verifier = "a" * 50
    response = client.get("/oauth/authorize",
                          query_string=h.authorize_params(c.client_id, verifier, method="plain"))
    assert response.status_code == 302
    params = h.code_from(response.headers["Location"])
    assert params["error"] == "invalid_request" and params["state"] == "xyz"


def test_missing_challenge_is_invalid_request(client, session):
    c, _secret, _user, _totp = _setup(session)
    for challenge, method in ((None, None), (None, "S256")):
        response = client.get("/oauth/authorize",
                              query_string=h.authorize_params(c.client_id, challenge, method=method))
        assert response.status_code == 302
        assert h.code_from(response.headers["Location"])["error"] == "invalid_request"


def test_challenge_without_method_is_invalid_request(client, session):
    # RFC 7636 reads a missing method as `plain`, which is refused.
    c, _secret, _user, _totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    response = client.get("/oauth/authorize",
                          query_string=h.authorize_params(c.client_id, challenge, method=None))
    assert h.code_from(response.headers["Location"])["error"] == "invalid_request"


def test_unregistered_redirect_uri_is_not_redirected_to(client, session):
    c, _secret, _user, _totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = {**h.authorize_params(c.client_id, challenge), "redirect_uri": "https://evil.example/cb"}
    response = client.get("/oauth/authorize", query_string=params)
    assert response.status_code == 400 and "Location" not in response.headers


def test_wrong_verifier_is_invalid_grant(client, session):
    c, secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    response = _exchange(client, c, secret, code, h.pkce_pair()[0])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_expired_code_is_invalid_grant(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    row = session.scalar(sa.select(AuthorizationCode))
    assert row.expires_at - row.created_at == timedelta(seconds=60)
    row.expires_at = row.created_at - timedelta(seconds=1)
    session.commit()
    response = _exchange(client, c, secret, code, verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_reused_code_is_invalid_grant_and_revokes_the_first_token(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    first = _exchange(client, c, secret, code, verifier).get_json()
    assert client.get("/api/v1/me", headers=h.bearer(first["access_token"])).status_code == 200

    again = _exchange(client, c, secret, code, verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert client.get("/api/v1/me", headers=h.bearer(first["access_token"])).status_code == 401
    refresh = client.post("/oauth/token", headers=h.basic(c.client_id, secret),
                          data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert refresh.get_json()["error"] == "invalid_grant"


def test_code_of_another_client_is_invalid_grant(client, session):
    c, _secret, user, totp = _setup(session)
    other, other_secret = h.login_client(session, user.organisation)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    assert _exchange(client, other, other_secret, code, verifier).get_json()["error"] == "invalid_grant"


def test_refresh_token_is_rotated_and_the_old_one_refused(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    first = _exchange(client, c, secret, code, verifier).get_json()

    def refresh(token):
        return client.post("/oauth/token", headers=h.basic(c.client_id, secret),
                           data={"grant_type": "refresh_token", "refresh_token": token})

    second = refresh(first["refresh_token"])
    assert second.status_code == 200
    second = second.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "referrals:read referrals:review"
    assert client.get("/api/v1/me", headers=h.bearer(first["access_token"])).status_code == 401

    reused = refresh(first["refresh_token"])
    assert reused.status_code == 400 and reused.get_json()["error"] == "invalid_grant"
    # The replay revokes the whole family, the new pair included.
    assert client.get("/api/v1/me", headers=h.bearer(second["access_token"])).status_code == 401
    assert refresh(second["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_refresh_token_family_ends_12_hours_after_the_sign_in(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    first = _exchange(client, c, secret, code, verifier).get_json()
    row = session.scalar(sa.select(Token).where(Token.user_id == user.id))
    row.issued_at -= timedelta(hours=11)  # signed in 11 hours ago
    row.refresh_expires_at -= timedelta(hours=11)
    session.commit()
    deadline = row.refresh_expires_at

    def refresh(token):
        return client.post("/oauth/token", headers=h.basic(c.client_id, secret),
                           data={"grant_type": "refresh_token", "refresh_token": token})

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.get_json()
    session.expire_all()
    live = session.scalar(sa.select(Token).where(Token.user_id == user.id,
                                                 Token.refresh_revoked_at.is_(None)))
    assert live.refresh_expires_at == deadline  # rotation keeps the family's deadline
    live.refresh_expires_at = live.issued_at - timedelta(seconds=1)  # ... which has come
    session.commit()
    assert refresh(second.get_json()["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_a_totp_reset_ends_the_persons_sign_ins(client, session, run_cli):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    signed_in = _exchange(client, c, secret, _code(client, c, user, totp, challenge=challenge),
                          verifier).get_json()
    assert client.get("/api/v1/me", headers=h.bearer(signed_in["access_token"])).status_code == 200
    assert run_cli("users", "reset-totp", str(user.id)).exit_code == 0
    assert client.get("/api/v1/me", headers=h.bearer(signed_in["access_token"])).status_code == 401
    refreshed = client.post("/oauth/token", headers=h.basic(c.client_id, secret),
                            data={"grant_type": "refresh_token", "refresh_token": signed_in["refresh_token"]})
    assert refreshed.get_json()["error"] == "invalid_grant"


def test_refresh_of_a_deactivated_person_is_refused(client, session, run_cli):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    first = _exchange(client, c, secret, code, verifier).get_json()
    assert run_cli("users", "deactivate", user.email).exit_code == 0
    response = client.post("/oauth/token", headers=h.basic(c.client_id, secret),
                           data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]})
    assert response.status_code == 400
    assert client.get("/api/v1/me", headers=h.bearer(first["access_token"])).status_code == 401


def test_deactivated_person_cannot_log_in(client, session):
    c, _secret, user, totp = _setup(session)
    user.active = False
    session.commit()
    _verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge),
                                        email=user.email, totp_code=totp.now())
    assert response.status_code == 400
    assert session.scalar(sa.select(sa.func.count()).select_from(Token)) == 0


def test_introspection_of_a_persons_tokens(client, session):
    c, secret, user, totp = _setup(session)
    verifier, challenge = h.pkce_pair()
    code = _code(client, c, user, totp, challenge=challenge)
    tokens = _exchange(client, c, secret, code, verifier).get_json()
    access = client.post("/oauth/introspect", data={"token": tokens["access_token"]},
                         headers=h.basic(c.client_id, secret)).get_json()
    assert access["active"] is True and access["sub"] == str(user.id) and access["token_type"] == "Bearer"
    auth = h.basic(c.client_id, secret)
    hinted = {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"}
    refresh = client.post("/oauth/introspect", headers=auth, data=hinted).get_json()
    assert refresh["active"] is True and refresh["exp"] - refresh["iat"] == 12 * 3600
    client.post("/oauth/revoke", data={"token": tokens["refresh_token"]}, headers=auth)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        after = client.post("/oauth/introspect", data={"token": token}, headers=auth)
        assert after.get_json() == {"active": False}


def test_lock_ends_after_a_while(client, session):
    from referral_api.db import utcnow

    c, _secret, user, totp = _setup(session)
    user.locked_until = utcnow() - timedelta(seconds=1)
    user.failed_logins = MAX_FAILED_LOGINS - 1
    session.commit()
    _verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge),
                                        email=user.email, totp_code=totp.now())
    assert response.status_code == 302
    session.expire_all()
    assert session.get(User, user.id).failed_logins == 0


def test_every_login_attempt_is_audited_without_the_typed_e_mail(client, session):
    from referral_api.audit.models import AuditEvent
    from referral_api.audit.services import verify

    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    h.login_with_test_client(client, params, email="stranger@example.org", password="guess")
    for _ in range(MAX_FAILED_LOGINS):
        h.login_with_test_client(client, params, email=user.email, password="wrong password!",
                                 totp_code=totp.now())
    events = session.scalars(sa.select(AuditEvent).where(AuditEvent.action.like("auth:%"))
                             .order_by(AuditEvent.seq)).all()
    fails = [e for e in events if e.action == "auth:login:fail"]
    assert len(fails) == MAX_FAILED_LOGINS + 1 and {e.outcome.value for e in fails} == {"denied"}
    assert fails[0].user_id is None and fails[0].details == {"reason": "unknown e-mail"}
    assert {e.user_id for e in fails[1:]} == {str(user.id)}
    assert [e.action for e in events].count("auth:account:lock") == 1
    assert "stranger@example.org" not in str([(e.details, e.resource_id) for e in events])
    assert user.email not in str([(e.details, e.resource_id) for e in events])
    assert verify(session).ok


def test_a_successful_login_is_audited(client, session):
    from referral_api.audit.models import AuditEvent

    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    _code(client, c, user, totp, challenge=challenge)
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.user_id == str(user.id))).all()
    assert "auth:login:succeed" in actions


def test_a_reused_totp_code_is_told_apart_in_both_languages(client, session):
    c, _secret, user, totp = _setup(session)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    code = totp.now()
    client.set_cookie("console_lang", "en")
    assert h.login_with_test_client(client, params, email=user.email, totp_code=code).status_code == 302
    again = h.login_with_test_client(client, params, email=user.email, totp_code=code)
    assert again.status_code == 400
    assert "was used already" in again.get_data(as_text=True)
    client.set_cookie("console_lang", "mn")
    mongolian = h.login_with_test_client(client, params, email=user.email, totp_code=code)
    assert "аль хэдийн ашигласан" in mongolian.get_data(as_text=True)
    # a wrong password with that code says nothing about the code
    client.set_cookie("console_lang", "en")
    wrong = h.login_with_test_client(client, params, email=user.email, password="not the password",
                                     totp_code=code)
    assert "was used already" not in wrong.get_data(as_text=True)
    assert "not right" in wrong.get_data(as_text=True)
