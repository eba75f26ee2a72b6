"""Logins at the same moment (PostgreSQL, read committed): a TOTP code works once, every failure counts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.access import Role
from referral_api.auth import services
from referral_api.auth.models import User
from referral_api.db import database
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h
from tests.conftest import throwaway_database


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
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path / "instance"), "TESTING": True})
        dbmigrate.upgrade(database(app))
        try:
            yield app
        finally:
            database(app).engine.dispose()


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
