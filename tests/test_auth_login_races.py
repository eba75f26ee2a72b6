"""At the same moment (PostgreSQL, read committed): a TOTP code works once, every failed login counts,
one e-mail is one person."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.auth import services
from referral_api.auth.models import User
from referral_api.db import database
from referral_api.errors import Conflict
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h
from tests.conftest import migrated_app


class _OpenGuard:
    """No address lock: the races here are in the database, not in the guard's counters."""

    def attempt(self, _user_id) -> bool:
        return True

    def locked(self, _user_id) -> bool:
        return False

    def succeeded(self, _user_id) -> None:
        pass

    def slow_down(self) -> None:
        pass


@pytest.fixture
def own_app(backend, tmp_path) -> Iterator:
    if backend != "postgresql":
        pytest.skip("transactions at the same moment: PostgreSQL (SQLite has one writer)")
    with migrated_app(backend, tmp_path) as app:
        yield app


def _coordinator(app) -> tuple[str, str]:
    with app.app_context(), database(app).sessionmaker() as s:
        mgec = h.organisation(s, kind=OrganisationKind.MGEC)
        user, totp = h.person(s, mgec, Role.MGEC_COORDINATOR)
        return user.email, totp.now()


def _together(app, attempts: list[Callable]) -> list[str]:
    """Run each attempt (given a session) in its own thread, released at once; what each ended with."""
    barrier, results = threading.Barrier(len(attempts)), []

    def run(attempt):
        with app.app_context(), database(app).sessionmaker() as s:
            barrier.wait()
            try:
                attempt(s)
                results.append("ok")
            except services.LoginFailed as failed:
                results.append(failed.reason)

    threads = [threading.Thread(target=run, args=(a,)) for a in attempts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(results)


def test_one_totp_code_in_two_logins_at_the_same_moment_works_once(own_app):
    email, code = _coordinator(own_app)

    def login(s):
        services.login(s, email=email, password=h.PASSWORD, guard=_OpenGuard(), totp_code=code)

    assert _together(own_app, [login, login]) == ["ok", services.TOTP_REUSED]


def test_wrong_passwords_at_the_same_moment_are_each_counted(own_app):
    email, code = _coordinator(own_app)

    def wrong(s):
        services.login(s, email=email, password="not the password", guard=_OpenGuard(), totp_code=code)

    assert _together(own_app, [wrong, wrong, wrong]) == ["wrong password"] * 3
    with own_app.app_context(), database(own_app).sessionmaker() as s:
        assert s.scalar(sa.select(User.failed_logins).where(User.email == email)) == 3


def test_one_person_created_twice_at_the_same_moment_is_a_409_not_a_500(own_app):
    """Both creations pass the e-mail check before either commits; the unique constraint stops the second,
    which answers as the check would have (it was a 500, and its log quoted the e-mail)."""
    with own_app.app_context(), database(own_app).sessionmaker() as s:
        org_id = str(h.organisation(s).id)
    barrier, results = threading.Barrier(2), []

    def create():
        with own_app.app_context(), database(own_app).sessionmaker() as s:
            barrier.wait()
            try:
                services.create_user(s, organisation=org_id, email="twice@partner.example",
                                     role=Role.PARTNER_OFFICER, password="a long password 1")
                results.append("created")
            except Conflict as conflict:
                results.append(conflict.errors)

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results, key=str) == ["created", {"email": ["taken"]}]
