"""Failed authentications cost the attacker, never the real client or person (issue 11, points 4 and 10)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.audit.models import AuditEvent
from referral_api.auth import services
from referral_api.auth.services import MAX_FAILED_LOGINS
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

ATTACKERS = ("203.0.113.7", "203.0.113.8", "203.0.113.9")
REAL = "198.51.100.20"


def _token(http, client_id, secret, address):
    return http.post("/oauth/token", data={"grant_type": "client_credentials"},
                     headers=h.basic(client_id, secret), environ_base={"REMOTE_ADDR": address})


def test_wrong_secrets_from_other_addresses_do_not_lock_the_real_client_out(base_app, client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    base_app.config["AUTH_RATELIMIT_TOKEN_PER_CLIENT"] = "20/minute"
    try:
        statuses = {a: [_token(client, c.client_id, "wrong", a).status_code for _ in range(45)]
                    for a in ATTACKERS}
        for address, seen in statuses.items():
            # The attacker's own (client, address) failures run out; it is refused, 429.
            assert seen[:10] == [401] * 10 and set(seen[10:]) == {429}, (address, seen)
        # 135 failures named the client: its quota is whole for the real client at another address.
        assert [_token(client, c.client_id, secret, REAL).status_code for _ in range(20)] == [200] * 20
        # Its own successful requests do count against it.
        assert _token(client, c.client_id, secret, REAL).status_code == 429
    finally:
        base_app.config.pop("AUTH_RATELIMIT_TOKEN_PER_CLIENT")


def test_failures_from_one_address_are_limited_across_client_ids(client, session):
    statuses = [_token(client, f"cl_made_up_{i}", "wrong", ATTACKERS[0]).status_code for i in range(31)]
    assert statuses == [401] * 30 + [429]
    c, secret = h.secret_client(session, h.organisation(session))
    assert _token(client, c.client_id, secret, REAL).status_code == 200


def test_the_login_form_has_no_per_client_limit_anyone_could_spend(base_app, client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, _secret = h.login_client(session, mgec)
    user, _totp = h.person(session, mgec, Role.MGEC_CASEWORKER)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    # 63 failed attempts through the one login client, from seven addresses each under its own limit (20 a
    # minute): more than a per-client limit (the old 60 a minute) would let through
    for address in [f"203.0.113.{n}" for n in range(10, 17)] * 9:
        client.environ_base["REMOTE_ADDR"] = address
        assert h.login_with_test_client(client, params, email="nobody@example.org").status_code == 400
    client.environ_base["REMOTE_ADDR"] = REAL
    assert h.login_with_test_client(client, params, email=user.email).status_code == 302


def _login_from(http, params, user, address, password=h.PASSWORD):
    http.environ_base["REMOTE_ADDR"] = address
    return h.login_with_test_client(http, params, email=user.email, password=password)


def test_login_lock_is_per_account_and_address_and_only_slows_elsewhere(client, session, monkeypatch):
    from referral_api.auth import failures

    pauses = []
    monkeypatch.setattr(failures.time, "sleep", pauses.append)
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, _secret = h.login_client(session, mgec)
    user, _totp = h.person(session, mgec, Role.MGEC_CASEWORKER)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    for _ in range(MAX_FAILED_LOGINS):
        assert _login_from(client, params, user, ATTACKERS[0], password="wrong password!").status_code == 400
    # The attacker's address is locked for this account, even with the right password...
    assert _login_from(client, params, user, ATTACKERS[0]).status_code == 400
    # ...the person, elsewhere, is not: only slowed down while the account is under attack.
    pauses.clear()
    assert _login_from(client, params, user, REAL).status_code == 302
    assert pauses == [failures.SLOWDOWN_SECONDS]
    # Success cleared the slow-down; the attacker's address stays locked for this account.
    assert _login_from(client, params, user, ATTACKERS[0]).status_code == 400
    lock_events = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth:account:lock")).all()
    assert len(lock_events) == 1


class _CountingHasher:
    def __init__(self, hasher):
        self._hasher = hasher
        self.verified = []

    def verify(self, password_hash, password):
        self.verified.append(password_hash)
        return self._hasher.verify(password_hash, password)

    def __getattr__(self, name):
        return getattr(self._hasher, name)


def test_unknown_and_locked_accounts_cost_one_password_hash_as_a_known_one(client, session, monkeypatch):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, _secret = h.login_client(session, mgec)
    user, _totp = h.person(session, mgec, Role.MGEC_CASEWORKER)
    _verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge)
    for _ in range(MAX_FAILED_LOGINS):
        _login_from(client, params, user, ATTACKERS[0], password="wrong password!")
    counting = _CountingHasher(services._hasher)
    monkeypatch.setattr(services, "_hasher", counting)

    client.environ_base["REMOTE_ADDR"] = ATTACKERS[0]
    assert h.login_with_test_client(client, params, email="nobody@example.org").status_code == 400
    assert counting.verified == [services._DUMMY_HASH]
    counting.verified.clear()
    assert _login_from(client, params, user, ATTACKERS[0]).status_code == 400  # locked here
    assert counting.verified == [services._DUMMY_HASH]
    counting.verified.clear()
    assert _login_from(client, params, user, ATTACKERS[1], password="wrong password!").status_code == 400
    assert len(counting.verified) == 1 and counting.verified[0] != services._DUMMY_HASH


def test_a_refresh_asking_for_more_scope_is_refused_before_the_token_is_spent(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge, scope="referrals:read")
    response = h.login_with_test_client(client, params, email=user.email, totp_code=totp.now())
    code = h.code_from(response.headers["Location"])["code"]
    tokens = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier}).get_json()

    def refresh(scope=None):
        data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        if scope:
            data["scope"] = scope
        return client.post("/oauth/token", headers=h.basic(c.client_id, secret), data=data)

    wider = refresh("referrals:read referrals:review")
    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"
    assert client.get("/api/v1/me", headers=h.bearer(tokens["access_token"])).status_code == 200
    again = refresh()
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["scope"] == "referrals:read"


def test_the_rate_limit_expiry_thread_survives_a_counter_dropped_under_it(monkeypatch):
    """limits' get() drops an expired counter without a lock; the expiry pass that was looking at it
    raises KeyError. The thread goes on (it used to end, with a traceback outside the JSON log)."""
    import time

    from referral_api.auth.limits import ProcessMemoryStorage

    fresh = ProcessMemoryStorage()
    fresh.EXPIRE_EVERY = 0.01
    passes = []

    def racing_pass():
        passes.append(time.monotonic())
        if len(passes) == 1:
            raise KeyError("LIMITER/token-address/address:127.0.0.1/1000/1/minute")

    monkeypatch.setattr(fresh, "_MemoryStorage__expire_events", racing_pass)
    fresh.incr("k", 60)
    deadline = time.monotonic() + 5
    while len(passes) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(passes) >= 3 and fresh._expirer.is_alive()


def test_memory_rate_limits_start_no_thread_per_request(app, monkeypatch):
    import threading
    import time

    from referral_api.auth.limits import ProcessMemoryStorage

    storage = app.extensions["referral_api.limiter"].storage
    assert isinstance(storage, ProcessMemoryStorage)  # what RATELIMIT_STORAGE_URI=memory:// gives
    fresh = ProcessMemoryStorage()
    started = []
    original_start = threading.Thread.start
    monkeypatch.setattr(threading.Thread, "start", lambda t: (started.append(t.name), original_start(t))[1])
    for _ in range(20):
        assert fresh.acquire_entry("k", 100, 60)
        time.sleep(0.015)  # longer than limits' own 10 ms expiry timer, which would start a thread
    assert started == ["ratelimit-expiry"]
    assert fresh.get_moving_window("k", 100, 60)[1] == 20
    fresh.events["k"][-1].expiry = time.time() - 1  # the oldest entry is due: the expiry thread drops it
    fresh.EXPIRE_EVERY = 0.01
    deadline = time.monotonic() + 5
    while len(fresh.events.get("k", [])) == 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(fresh.events["k"]) == 19


def test_attempts_at_the_same_moment_cannot_all_pass_the_lock(app, session, monkeypatch):
    """Each attempt is counted before its password is checked: while one is being checked, those that
    arrive meanwhile count too, and no more than MAX_FAILED_LOGINS passwords are ever checked."""
    from limits.storage import MemoryStorage
    from limits.strategies import MovingWindowRateLimiter

    from referral_api.auth import failures

    monkeypatch.setattr(failures.time, "sleep", lambda _seconds: None)
    mgec = h.organisation(session, OrganisationKind.MGEC)
    user, _totp = h.person(session, mgec, Role.MGEC_CASEWORKER)
    session.commit()
    guard = failures.LoginGuard(MovingWindowRateLimiter(MemoryStorage()), "address:203.0.113.7")
    real = services._hasher
    checked = []

    class Overlapping:
        def verify(self, password_hash, password):
            checked.append(password_hash)
            if len(checked) == 1:  # while the first password is being checked, more attempts arrive
                for _ in range(MAX_FAILED_LOGINS + 2):
                    with pytest.raises(services.LoginFailed):
                        services.login(session, email=user.email, password="wrong password!", guard=guard)
            return real.verify(password_hash, password)

        def __getattr__(self, name):
            return getattr(real, name)

    monkeypatch.setattr(services, "_hasher", Overlapping())
    with app.test_request_context("/oauth/authorize", method="POST"), pytest.raises(services.LoginFailed):
        services.login(session, email=user.email, password="wrong password!", guard=guard)
    assert len([c for c in checked if c != services._DUMMY_HASH]) == MAX_FAILED_LOGINS
    assert not guard.attempt(user.id)  # locked for this address
