"""Secrets compared in constant time take any text: a form token, an OAuth state, a nonce or a one-time
code beyond ASCII is a wrong one (hmac.compare_digest raised TypeError on such text: a 500)."""

from __future__ import annotations

import time

from referral_api.access import Role
from referral_api.auth import dpop
from referral_api.organisations.models import OrganisationKind
from referral_api.validators import same_secret
from tests import console_helpers as ch
from tests import oauth_helpers as h
from tests.console_helpers import console  # noqa: F401  (fixture)

FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def test_same_secret_compares_any_text():
    assert same_secret("abc", "abc") and not same_secret("é", "abc") and not same_secret("\ud800", "abc")
    assert same_secret("ключ", "ключ") and not same_secret("", "abc")


def _login_form(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, _secret = h.login_client(session, mgec)
    _verifier, challenge = h.pkce_pair()
    return mgec, c, challenge


def test_a_login_form_token_beyond_ascii_is_an_expired_form(client, session):
    _mgec, c, challenge = _login_form(client, session)
    page = client.get("/oauth/authorize", query_string=h.authorize_params(c.client_id, challenge))
    form = h.hidden_fields(page.get_data(as_text=True))
    form.update(csrf_token="é", email="x@example.org", password="x", totp="")
    assert client.post("/oauth/authorize", data=form).status_code == 400


def test_a_one_time_code_in_full_width_digits_is_the_same_code(client, session):
    mgec, c, challenge = _login_form(client, session)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    wrong = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge),
                                     email=user.email, totp_code="１２３４５Ｘ")
    assert wrong.status_code == 400
    right = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge),
                                     email=user.email, totp_code=totp.now().translate(FULL_WIDTH))
    assert right.status_code == 302 and "code" in h.code_from(right.headers["Location"]), right.status_code


def test_a_console_state_beyond_ascii_is_a_failed_sign_in(client, session, console):
    client.get("/console/login/start")
    assert client.get("/console/callback?code=x&state=%C3%A9").status_code == 400


def test_a_console_form_token_beyond_ascii_is_refused(client, session, console):
    ch.signed_in(client, session, console)
    assert client.post("/console/logout", data={"csrf_token": "é"}).status_code == 400


def test_a_dpop_nonce_beyond_ascii_is_not_our_nonce(app):
    with app.app_context():
        assert not dpop._nonce_ok("é", time.time())
        assert dpop._nonce_ok(dpop.current_nonce(), time.time())
