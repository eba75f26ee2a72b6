"""Two requests of one console session whose access token has expired (two tabs, a double click): the
second waits for the first's refresh and uses its token; it never presents the refresh token the
first spent, which is a replay that revokes the family and signs the person out (PostgreSQL, an app
on a database of its own: the shared test connection cannot run two transactions at once)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.audit.models import AuditEvent
from referral_api.auth.models import Token
from referral_api.console import oauth
from referral_api.console.models import ConsoleSession
from referral_api.db import database, utcnow
from referral_api.organisations.models import OrganisationKind
from tests import console_helpers as ch
from tests import oauth_helpers as h
from tests.conftest import migrated_app


@pytest.mark.postgres_only
def test_two_requests_refreshing_at_once_keep_the_session(backend, tmp_path, monkeypatch):
    with migrated_app(backend, tmp_path) as app:
        _race(app, database(app), monkeypatch)


def _race(app, db, monkeypatch) -> None:
    http = app.test_client()
    http.set_cookie("console_lang", "en")
    with app.app_context(), db.sessionmaker() as s:
        mgec = h.organisation(s, kind=OrganisationKind.MGEC)
        ch.register(s)
        user, totp = h.person(s, mgec, Role.MGEC_COORDINATOR)
        assert ch.sign_in(http, s, user, totp).status_code == 302
        row = s.scalar(sa.select(ConsoleSession).where(ConsoleSession.user_id == user.id))
        expired = s.get(Token, row.token_id)
        expired.expires_in, expired.issued_at = 1, utcnow() - timedelta(minutes=5)
        s.commit()
    cookie = ch.session_cookie(http)
    real_refresh = oauth.refresh

    def slow_refresh(c, refresh_token):  # the other tab arrives while this one refreshes
        time.sleep(0.5)
        return real_refresh(c, refresh_token)

    monkeypatch.setattr(oauth, "refresh", slow_refresh)
    barrier, answers = threading.Barrier(2), []

    def tab():
        other = app.test_client()
        other.set_cookie("console_session", cookie, path="/console")
        barrier.wait()
        answers.append(other.get("/console/queue").status_code)

    tabs = [threading.Thread(target=tab) for _ in range(2)]
    for t in tabs:
        t.start()
    for t in tabs:
        t.join(timeout=60)
    assert answers == [200, 200], answers
    assert http.get("/console/queue").status_code == 200  # still signed in
    with app.app_context(), db.sessionmaker() as s:
        denied = s.scalars(sa.select(AuditEvent.details).where(AuditEvent.action == "auth:token:refresh",
                                                               AuditEvent.outcome == "denied")).all()
    assert denied == []  # no replay was seen
