"""Signing in to the console as a browser does: /console/login/start, the login form, the callback."""

from __future__ import annotations

import re
from datetime import datetime
from html import unescape
from urllib.parse import urlsplit

import pyotp
import pytest

from referral_api.access import ROLE_SCOPES, Actor, OrganisationRef, Role
from referral_api.console import oauth
from referral_api.console.shell import SESSION_COOKIE
from tests import oauth_helpers as h
from tests.factories import ReferralFactory

TEST_CALLBACK = "http://localhost/console/callback"


def register(session, *redirect_uris: str):
    return oauth.register_client(session, redirect_uris=list(redirect_uris) or [TEST_CALLBACK])


def code_for(totp: pyotp.TOTP, user, session) -> str:
    """A TOTP code the login accepts: each step is accepted once, so take the next unused one."""
    session.refresh(user)
    moment = datetime.now()
    now = totp.timecode(moment)
    # The previous step expires at the next step boundary: not when that is so close that the request
    # (argon2 and a loaded machine) could reach the server after it.
    first = now - 1 if totp.interval - moment.timestamp() % totp.interval > 5 else now
    step = max(first, (user.totp_last_step or -1) + 1)
    assert step <= now + 1, "no unused TOTP step left in the window: sign in with another person"
    return totp.generate_otp(step)


def sign_in(http, session, user, totp, *, password: str = h.PASSWORD):
    """The whole sign-in; returns the callback's response (302 to /console/ on success)."""
    start = http.get("/console/login/start")
    assert start.status_code == 302, start.get_data(as_text=True)
    form_page = http.get(start.headers["Location"])
    assert form_page.status_code == 200, form_page.get_data(as_text=True)
    fields = {k: unescape(v) for k, v in h.hidden_fields(form_page.get_data(as_text=True)).items()}
    fields.update(email=user.email, password=password, totp=code_for(totp, user, session) if totp else "")
    posted = http.post("/oauth/authorize", data=fields)
    assert posted.status_code == 302, posted.get_data(as_text=True)
    back = urlsplit(posted.headers["Location"])
    return http.get(f"{back.path}?{back.query}")


def session_cookie(http) -> str | None:
    cookie = http.get_cookie(SESSION_COOKIE, path="/console")
    return cookie.value if cookie else None


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def key_of(html: str) -> str:
    """The idempotency key of the page's (first) form that creates something."""
    match = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    assert match, "no idempotency key in the page"
    return match.group(1)


def version_of(html: str) -> str:
    match = re.search(r'name="version" value="([^"]+)"', html)
    assert match, "no version in the page"
    return unescape(match.group(1))


def actor_for(user, client_id: str) -> Actor:
    """The Actor the API would build for `user`'s token (to submit a referral as that person)."""
    org = user.organisation
    return Actor(
        organisation=OrganisationRef(org.id, org.kind.value),
        client_id=client_id,
        user_id=user.id,
        role=user.role,
        scopes=ROLE_SCOPES[Role(user.role)],
    )


def partner_actor(org, client_id: str = "cl_partner") -> Actor:
    return Actor(
        organisation=OrganisationRef(org.id, org.kind.value),
        client_id=client_id,
        user_id=None,
        role=None,
        scopes=frozenset({"referrals:submit", "referrals:read"}),
    )


def submit(session, actor: Actor, **overrides):
    """A referral submitted through the service, as the API's POST does."""
    return ReferralFactory(session=session, submitter=actor, fields=overrides)


@pytest.fixture
def console(app, world, session):
    """Organisations, the console client, a police referral and a signed-in coordinator."""
    with app.app_context():
        register(session)
        world.coordinator, world.totp = h.person(session, world.orgs["mgec"], Role.MGEC_COORDINATOR)
        world.referral = submit(session, partner_actor(world.orgs["police"]))
    return world


def signed_in(http, session, world, *, english=True):
    """Sign the fixture's coordinator in (in English unless asked otherwise)."""
    if english:
        http.set_cookie("console_lang", "en")
    answer = sign_in(http, session, world.coordinator, world.totp)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/")
    return answer
