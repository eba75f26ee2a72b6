"""The console's sign-in cannot be spent by a stranger: its in-process code exchange is not counted
against the console client's token limit (60 a minute for every person), junk callbacks and the pending
sign-ins a stranger starts are bounded per address, and a pending sign-in is tried once."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa

from referral_api.console.models import ConsoleSession
from tests import console_helpers as ch
from tests.console_helpers import console  # noqa: F401  (fixture)

STRANGER = {"REMOTE_ADDR": "203.0.113.9"}


def _junk_callback(http) -> int:
    start = http.get("/console/login/start", environ_base=STRANGER)
    if start.status_code == 429:  # starting a sign-in is bounded per address too
        return 429
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    return http.get(f"/console/callback?code=junk&state={state}", environ_base=STRANGER).status_code


def test_junk_callbacks_of_a_stranger_keep_no_one_out(app, client, session, console):
    stranger = app.test_client()
    answers = [_junk_callback(stranger) for _ in range(70)]  # more than the console client's 60 a minute
    assert set(answers) == {400, 429} and answers[:20] == [400] * 20, answers
    answer = ch.sign_in(client, session, console.coordinator, console.totp)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/")


def test_a_pending_sign_in_is_tried_once(app, client, session, console):
    stranger = app.test_client()
    assert _junk_callback(stranger) == 400
    cookie = ch.session_cookie(stranger)
    rows = session.scalars(sa.select(ConsoleSession)).all()
    assert cookie and rows and all(row.ended_at is not None for row in rows if row.user_id is None)


def test_callbacks_over_the_limit_get_a_page_saying_to_wait(app, session, console):
    stranger = app.test_client()
    stranger.set_cookie("console_lang", "mn")
    start = stranger.get("/console/login/start", environ_base=STRANGER)
    state = parse_qs(urlsplit(start.headers["Location"]).query)["state"][0]
    junk = f"/console/callback?code=junk&state={state}"
    for _ in range(20):  # counted whether or not a sign-in is pending
        assert stranger.get(junk, environ_base=STRANGER).status_code == 400
    refused = stranger.get(junk, environ_base=STRANGER)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.mimetype == "text/html" and "Хэт олон оролдлого" in refused.get_data(as_text=True)


def test_starting_sign_ins_is_bounded_per_address(app, client, session, console):
    """Each start stores a pending session: a stranger over the login limit (20 a minute) gets the page
    asking to wait and stores nothing more; a person at another address still signs in."""
    stranger = app.test_client()
    stranger.set_cookie("console_lang", "en")
    for _ in range(20):
        assert stranger.get("/console/login/start", environ_base=STRANGER).status_code == 302
    pending = session.scalar(sa.select(sa.func.count()).select_from(ConsoleSession))
    refused = stranger.get("/console/login/start", environ_base=STRANGER)
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.mimetype == "text/html" and "Too many attempts" in refused.get_data(as_text=True)
    assert "Set-Cookie" not in refused.headers
    assert session.scalar(sa.select(sa.func.count()).select_from(ConsoleSession)) == pending
    answer = ch.sign_in(client, session, console.coordinator, console.totp)
    assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/")


def test_a_stylesheet_reads_no_session_and_refreshes_no_token(client, session, console, monkeypatch):
    """A page and its static files come together: only the page looks at the session (each look at an
    expired token may refresh it, holding database connections)."""
    from datetime import timedelta

    from referral_api.auth.models import Token
    from referral_api.console import oauth
    from referral_api.db import utcnow

    ch.signed_in(client, session, console)
    row = session.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == console.coordinator.id))
    token = session.get(Token, row.token_id)
    token.expires_in, token.issued_at = 1, utcnow() - timedelta(minutes=5)
    session.commit()
    refreshed = []
    monkeypatch.setattr(oauth, "refresh", lambda *args: refreshed.append(args) or {})
    assert client.get("/console/static/console.css").status_code == 200
    assert refreshed == []
