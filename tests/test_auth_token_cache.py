"""The per-worker cache of validated access tokens: what another process changes is seen within
TOKEN_CACHE_SECONDS, what this process changes at once. Time is driven through the cache's clock.

"Another process" is a change written on the test's connection with plain SQL, which no session of
this process sees as a change of a token, client, organisation or person (as a second worker would).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api.access import Actor, OrganisationRef, Role
from referral_api.auth import token_cache
from referral_api.auth.models import Client, Token, User, secret_hash
from referral_api.auth.token_cache import TokenCache
from referral_api.config import ConfigError, Settings
from referral_api.db import utcnow
from referral_api.organisations.models import Organisation, OrganisationKind
from tests import oauth_helpers as h


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(app):
    cache = app.extensions["referral_api.token_cache"]
    original = (cache.clock, cache.seconds)
    cache.clock = Clock()
    yield cache.clock
    cache.clock, cache.seconds = original


def _bound(app) -> int:
    return app.extensions["referral_api.token_cache"].seconds


def _client_token(client, session):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org)
    body = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                       headers=h.basic(c.client_id, secret)).get_json()
    c.secret = secret
    return org, c, body["access_token"]


def _person_token(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    partner = h.organisation(session, OrganisationKind.POLICE)
    c, secret = h.login_client(session, mgec, scopes="referrals:read cases:read")
    user, _ = h.person(session, partner, Role.PARTNER_OFFICER)
    verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge,
                                                                   scope="referrals:read"), email=user.email)
    code = h.code_from(response.headers["Location"])["code"]
    token = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier}).get_json()["access_token"]
    return user, token


def _elsewhere(connection, model, where, **values) -> None:
    """A change by another process: a Core UPDATE on the test's connection, outside every session."""
    connection.execute(sa.update(model.__table__).where(where).values(**values))


def _me(client, token) -> int:
    return client.get("/api/v1/me", headers=h.bearer(token)).status_code


def _refused_within_the_bound(app, client, clock, token) -> None:
    bound = _bound(app)
    assert bound > 0
    clock.now += bound - 0.5
    assert _me(client, token) == 200  # still the validation of this worker's cache, within the bound
    clock.now += 0.5
    response = client.get("/api/v1/me", headers=h.bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    clock.now += 3600
    assert _me(client, token) == 401  # and stays refused


def test_a_token_revoked_elsewhere_is_refused_within_the_bound(app, client, session, connection, clock):
    _org, _c, token = _client_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, Token, Token.__table__.c.access_token_hash == secret_hash(token),
               access_revoked_at=utcnow())
    _refused_within_the_bound(app, client, clock, token)


def test_a_token_of_an_organisation_suspended_elsewhere_is_refused_within_the_bound(app, client, session,
                                                                                    connection, clock):
    org, _c, token = _client_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, Organisation, Organisation.__table__.c.id == org.id, status="suspended")
    _refused_within_the_bound(app, client, clock, token)


def test_a_token_of_a_client_revoked_elsewhere_is_refused_within_the_bound(app, client, session, connection,
                                                                           clock):
    _org, c, token = _client_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, revoked_at=utcnow())
    _refused_within_the_bound(app, client, clock, token)


def test_a_token_of_a_person_deactivated_elsewhere_is_refused_within_the_bound(app, client, session,
                                                                              connection, clock):
    user, token = _person_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, User, User.__table__.c.id == user.id, active=False)
    _refused_within_the_bound(app, client, clock, token)


def test_a_token_of_a_persons_organisation_suspended_elsewhere_is_refused_within_the_bound(
        app, client, session, connection, clock):
    user, token = _person_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, Organisation, Organisation.__table__.c.id == user.organisation_id,
               status="suspended")
    _refused_within_the_bound(app, client, clock, token)


def test_changes_made_by_this_process_are_seen_at_once(client, session, clock, run_cli):
    _org, c, token = _client_token(client, session)
    assert _me(client, token) == 200
    revoked = client.post("/oauth/revoke", data={"token": token}, headers=h.basic(c.client_id, c.secret))
    assert revoked.status_code == 200
    assert _me(client, token) == 401  # the clock did not move
    other_org, _c, other = _client_token(client, session)
    assert _me(client, other) == 200
    assert run_cli("orgs", "suspend", str(other_org.id)).exit_code == 0
    assert _me(client, other) == 401


def test_without_the_cache_a_change_elsewhere_is_seen_at_the_next_request(app, client, session, connection,
                                                                          clock):
    app.extensions["referral_api.token_cache"].seconds = 0
    _org, _c, token = _client_token(client, session)
    assert _me(client, token) == 200
    _elsewhere(connection, Token, Token.__table__.c.access_token_hash == secret_hash(token),
               access_revoked_at=utcnow())
    assert _me(client, token) == 401


def _actor() -> Actor:
    return Actor(organisation=OrganisationRef(uuid.uuid4(), OrganisationKind.NGO), client_id="c",
                 user_id=None, role=None, scopes=frozenset({"cases:read"}))


def test_the_cache_keeps_an_entry_for_the_bound_and_never_past_the_tokens_expiry():
    clock = Clock()
    cache = TokenCache(5, clock=clock)
    actor = _actor()
    cache.put("a", actor=actor, client_id="c", expires_at=utcnow() + timedelta(hours=1),
              generation=token_cache.generation())
    cache.put("b", actor=actor, client_id="c", expires_at=utcnow() - timedelta(seconds=1),
              generation=token_cache.generation())
    assert cache.get("a").actor is actor
    assert cache.get("b") is None  # expired: refused even when cached
    clock.now += 4.9
    assert cache.get("a") is not None
    clock.now += 0.1
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_cache_holds_at_most_max_entries_and_nothing_when_off():
    clock = Clock()
    cache = TokenCache(5, max_entries=3, clock=clock)
    later = utcnow() + timedelta(hours=1)
    for key in "abcd":
        cache.put(key, actor=_actor(), client_id="c", expires_at=later, generation=token_cache.generation())
        clock.now += 1
    assert len(cache) == 3 and cache.get("a") is None and cache.get("d") is not None
    off = TokenCache(0, clock=clock)
    off.put("a", actor=_actor(), client_id="c", expires_at=later, generation=token_cache.generation())
    assert off.get("a") is None and len(off) == 0


def test_a_token_validated_before_a_change_of_this_process_is_not_remembered():
    # Another greenlet revokes the token (bumping the generation) between this request's read of the
    # rows and its put: what was read may predate the revocation, so it must not be remembered.
    cache = TokenCache(5, clock=Clock())
    read_at = token_cache.generation()  # before the rows are read
    token_cache.invalidate_all()  # the revocation, committed by another greenlet meanwhile
    cache.put("a", actor=_actor(), client_id="c", expires_at=utcnow() + timedelta(hours=1),
              generation=read_at)
    assert cache.get("a") is None and len(cache) == 0
    cache.put("a", actor=_actor(), client_id="c", expires_at=utcnow() + timedelta(hours=1),
              generation=token_cache.generation())
    assert cache.get("a") is not None


def test_token_cache_seconds_is_a_setting_of_at_most_a_minute():
    assert Settings.from_env({}).token_cache_seconds == 5
    assert Settings.from_env({"TOKEN_CACHE_SECONDS": "0"}).token_cache_seconds == 0
    with pytest.raises(ConfigError, match="TOKEN_CACHE_SECONDS"):
        Settings.from_env({"TOKEN_CACHE_SECONDS": "61"}).check()
    with pytest.raises(ConfigError, match="TOKEN_CACHE_SECONDS"):
        Settings.from_env({"TOKEN_CACHE_SECONDS": "-1"})


def _issue(client, c) -> object:
    return client.post("/oauth/token", data={"grant_type": "client_credentials"},
                       headers=h.basic(c.client_id, c.secret))


def test_a_secret_rotated_elsewhere_is_refused_at_once_and_the_new_one_works_at_once(client, session,
                                                                                   connection, clock):
    _org, c, _token = _client_token(client, session)  # this process has just read the client
    assert _issue(client, c).status_code == 200
    new_secret = "rotated-by-another-process"
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, client_secret_hash=secret_hash(new_secret))
    old = _issue(client, c)  # no time passes: nothing remembered may answer
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    c.secret = new_secret
    assert _issue(client, c).status_code == 200


def test_a_client_revoked_elsewhere_gets_no_token_at_once(client, session, connection, clock):
    _org, c, _token = _client_token(client, session)
    assert _issue(client, c).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, revoked_at=utcnow())
    after = _issue(client, c)
    assert after.status_code == 401 and after.get_json()["error"] == "invalid_client"


def test_an_organisation_suspended_elsewhere_gets_no_token_at_once(client, session, connection, clock):
    org, c, _token = _client_token(client, session)
    _elsewhere(connection, Organisation, Organisation.__table__.c.id == org.id,
               status="suspended")
    after = _issue(client, c)
    assert after.status_code == 401 and after.get_json()["error"] == "invalid_client"


def test_a_jwks_replaced_elsewhere_is_used_at_once_at_the_token_endpoint(client, session, connection, clock):
    import json

    org = h.organisation(session)
    old_key, new_key = h.ec_key(), h.ec_key()
    jc = h.jwt_client(session, org, old_key)

    def issue(key):
        return client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                 **h.assertion_form(jc.client_id, key, aud="http://localhost")})

    assert issue(old_key).status_code == 200  # this process has just read the client
    _elsewhere(connection, Client, Client.__table__.c.id == jc.id,
               jwks=json.dumps({"keys": [new_key.as_dict(private=False)]}))
    refused = issue(old_key)
    assert refused.status_code in {400, 401} and refused.get_json()["error"] == "invalid_client"
    assert issue(new_key).status_code == 200
