"""The client credentials grant authenticates its client from a copy (auth/client_cache.py), and a copy
never issues on what changed elsewhere: the token's INSERT matches the client row as it is.

"Elsewhere" is a change written on the test's connection with plain SQL, which no session of this
process sees as a change of a client or organisation (as a second worker or node would).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from referral_api import audit
from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.auth import client_cache, services
from referral_api.auth.client_cache import ClientCache
from referral_api.auth.models import Client, ClientAuthMethod, Token, secret_hash
from referral_api.db import database, utcnow
from referral_api.organisations.models import Organisation
from tests import dpop_helpers as d
from tests import oauth_helpers as h
from tests.conftest import migrated_app

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def partner(session):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org, scopes="referrals:submit cases:status")
    session.commit()
    return org, c, secret


def _elsewhere(connection, model, where, **values) -> None:
    connection.execute(sa.update(model.__table__).where(where).values(**values))


@contextmanager
def _client_reads(connection) -> Iterator[list[str]]:
    """The SELECTs of oauth_clients the block sends through SQLAlchemy."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and "FROM oauth_clients" in statement:
            seen.append(statement)

    engine = connection.engine
    sa.event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", note)


def _grant(http, c, secret):
    return http.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))


def _issued(session, client_pk, client_id) -> tuple[int, int]:
    """Tokens stored for the client, and token-issue audit events naming it."""
    tokens = session.scalar(sa.select(sa.func.count()).select_from(Token).where(Token.client_pk == client_pk))
    events = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == str(AuditAction.AUTH_TOKEN_ISSUE), AuditEvent.client_id == client_id))
    return tokens, events


def test_a_repeated_grant_reads_its_client_once(client, connection, partner):
    _org, c, secret = partner
    with _client_reads(connection) as reads:
        for _ in range(3):
            answer = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
            assert answer.status_code == 200, answer.get_json()
    assert len(reads) == 1


def test_a_secret_rotated_elsewhere_refuses_the_old_one_and_takes_the_new_one_at_once(
        client, session, connection, partner):
    _org, c, secret = partner
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 200
    before = _issued(session, c.id, c.client_id)
    _elsewhere(connection, Client, Client.__table__.c.id == c.id,
               client_secret_hash=secret_hash("new-secret"))
    old = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert old.status_code == 401 and old.get_json()["error"] == "invalid_client"
    # no token and no "issued" event for the refused request
    assert _issued(session, c.id, c.client_id) == before
    new = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, "new-secret"))
    assert new.status_code == 200, new.get_json()


def test_a_secret_rotated_elsewhere_works_at_once_while_this_process_holds_the_old_copy(client, connection,
                                                                                       partner):
    _org, c, secret = partner
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id,
               client_secret_hash=secret_hash("new-secret"))
    new = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, "new-secret"))
    assert new.status_code == 200, new.get_json()
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 401


@pytest.mark.parametrize("change", ["revoked", "suspended"])
def test_a_client_revoked_or_suspended_elsewhere_gets_no_token_at_once(client, session, connection, partner,
                                                                      change):
    org, c, secret = partner
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 200
    before = _issued(session, c.id, c.client_id)
    if change == "revoked":
        _elsewhere(connection, Client, Client.__table__.c.id == c.id, revoked_at=utcnow())
    else:
        _elsewhere(connection, Organisation, Organisation.__table__.c.id == org.id, status="suspended")
    refused = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert refused.status_code == 401 and refused.get_json()["error"] == "invalid_client"
    assert _issued(session, c.id, c.client_id) == before


def test_scopes_narrowed_elsewhere_are_what_the_next_token_gets(client, connection, partner):
    _org, c, secret = partner
    first = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).get_json()
    assert set(first["scope"].split()) == {"referrals:submit", "cases:status"}
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, scope="cases:status")
    second = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert second.status_code == 200 and second.get_json()["scope"] == "cases:status"


def test_dpop_required_elsewhere_is_required_at_once(client, connection, partner):
    _org, c, secret = partner
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, require_dpop=True)
    answer = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_dpop_proof"


def test_a_key_set_replaced_elsewhere_is_used_at_once(client, session, connection):
    org = h.organisation(session)
    old_key, new_key = h.ec_key(), h.ec_key()
    c = h.jwt_client(session, org, old_key)
    session.commit()
    form = h.assertion_form(c.client_id, old_key, aud="http://localhost/oauth/token")
    assert client.post("/oauth/token", data={**GRANT, **form}).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id,
               jwks=json.dumps({"keys": [new_key.as_dict(private=False)]}))
    fresh = h.assertion_form(c.client_id, new_key, aud="http://localhost/oauth/token")
    answer = client.post("/oauth/token", data={**GRANT, **fresh})
    assert answer.status_code == 200, answer.get_json()
    stale = h.assertion_form(c.client_id, old_key, aud="http://localhost/oauth/token")
    assert client.post("/oauth/token", data={**GRANT, **stale}).status_code == 401


def test_a_key_client_changed_elsewhere_is_answered_on_its_one_assertion(client, session, connection):
    # The first attempt records the assertion's jti; the attempt again, on a fresh read, is the same
    # request, not a replay.
    org = h.organisation(session)
    key = h.ec_key()
    c = h.jwt_client(session, org, key, scopes="referrals:submit cases:status")
    session.commit()
    first = h.assertion_form(c.client_id, key, aud="http://localhost/oauth/token")
    assert client.post("/oauth/token", data={**GRANT, **first}).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, scope="cases:status")
    second = h.assertion_form(c.client_id, key, aud="http://localhost/oauth/token")
    answer = client.post("/oauth/token", data={**GRANT, **second})
    assert answer.status_code == 200 and answer.get_json()["scope"] == "cases:status"
    replay = client.post("/oauth/token", data={**GRANT, **second})
    assert replay.status_code == 401


def test_a_dpop_client_changed_elsewhere_is_answered_on_its_one_proof(client, session, connection):
    c, secret = d.dpop_client(session, scopes="referrals:submit cases:status")
    session.commit()
    key = h.ec_key()
    assert d.token_request(client, c, secret, key).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, scope="cases:status")
    answer = d.token_request(client, c, secret, key)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["scope"] == "cases:status" and answer.get_json()["token_type"] == "DPoP"


def test_what_was_granted_elsewhere_is_granted_at_once(client, session, connection):
    """A refusal decided on a copy (a scope, a grant type, DPoP) is decided again on a fresh read."""
    org = h.organisation(session)
    c, secret = h.secret_client(session, org, scopes="cases:status")
    session.commit()
    assert client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, scope="cases:status referrals:submit")
    answer = client.post("/oauth/token", data={**GRANT, "scope": "referrals:submit"},
                         headers=h.basic(c.client_id, secret))
    assert answer.status_code == 200 and answer.get_json()["scope"] == "referrals:submit"


def test_dpop_no_longer_required_elsewhere_is_not_required_at_once(client, session, connection):
    c, secret = d.dpop_client(session)
    session.commit()
    assert d.token_request(client, c, secret, h.ec_key()).status_code == 200
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, require_dpop=False)
    answer = d.token_request(client, c, secret)
    assert answer.status_code == 200 and answer.get_json()["token_type"] == "Bearer"


def test_the_client_credentials_grant_allowed_elsewhere_is_allowed_at_once(client, session, connection):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org, grant_types="authorization_code refresh_token",
                                redirect_uris=[h.REDIRECT_URI])
    session.commit()
    first = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert first.status_code == 400 and first.get_json()["error"] == "unauthorized_client"
    _elsewhere(connection, Client, Client.__table__.c.id == c.id,
               grant_types="client_credentials authorization_code refresh_token")
    answer = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
    assert answer.status_code == 200, answer.get_json()


def test_a_request_answered_again_from_a_fresh_read_costs_its_client_one_request(app, client, session,
                                                                                  connection):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org, scopes="referrals:submit cases:status")
    session.commit()
    app.config["AUTH_RATELIMIT_TOKEN_PER_CLIENT"] = "2/minute"
    try:
        assert _grant(client, c, secret).status_code == 200
        _elsewhere(connection, Client, Client.__table__.c.id == c.id, scope="cases:status")
        second = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
        assert second.status_code == 200, (second.status_code, second.get_json())
        third = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret))
        assert third.status_code == 429
    finally:
        app.config.pop("AUTH_RATELIMIT_TOKEN_PER_CLIENT", None)


def test_a_refusal_after_a_stale_copy_counts_as_a_failure(app, client, session, connection):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org)
    session.commit()
    app.config["AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS"] = "1/minute"
    try:
        assert _grant(client, c, secret).status_code == 200
        _elsewhere(connection, Client, Client.__table__.c.id == c.id, client_secret_hash="0" * 64)
        assert _grant(client, c, secret).status_code == 401
        again = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, "guess"))
        assert again.status_code == 429
    finally:
        app.config.pop("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", None)


def test_other_endpoints_read_their_client_afresh(client, connection, partner):
    _org, c, secret = partner
    token = client.post("/oauth/token", data=GRANT, headers=h.basic(c.client_id, secret)).get_json()
    _elsewhere(connection, Client, Client.__table__.c.id == c.id, revoked_at=utcnow())
    revoke = client.post("/oauth/revoke", data={"token": token["access_token"]},
                         headers=h.basic(c.client_id, secret))
    assert revoke.status_code == 401


def test_without_the_cache_every_grant_reads_its_client(app, client, connection, partner):
    cache = app.extensions["referral_api.client_cache"]
    original = cache.seconds
    cache.seconds = 0
    try:
        _org, c, secret = partner
        with _client_reads(connection) as reads:
            for _ in range(2):
                assert client.post("/oauth/token", data=GRANT,
                                   headers=h.basic(c.client_id, secret)).status_code == 200
        assert len(reads) == 2
    finally:
        cache.seconds = original


def _other(value):
    """A value unlike `value`, of its kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, uuid.UUID):
        return uuid.uuid4()
    if isinstance(value, ClientAuthMethod):
        return next(m for m in ClientAuthMethod if m is not value)
    return (value or "") + " changed"


def _guarded(session, c, guard) -> None:
    row = {"id": uuid.uuid4(), "access_token_hash": secret_hash(uuid.uuid4().hex), "client_pk": c.id,
           "scope": "cases:status", "issued_at": utcnow(), "expires_in": 60}
    with session.begin_nested():
        session.execute(client_cache.guarded_insert(tuple(row)), {**row, **guard})


def test_the_guard_refuses_a_row_that_differs_in_any_column_that_decides(session, partner):
    """Every column of oauth_clients but the row's identity, its name, its timestamps and revoked_at
    (required NULL) is compared, so a column added later is guarded without a change here: the INSERT
    succeeds with the row's own values and is refused (client_pk NULL) when any one of them differs."""
    columns = {c.name for c in Client.__table__.columns}
    assert set(client_cache.GUARDED_COLUMNS) == columns - {"id", "name", "created_at", "updated_at",
                                                           "revoked_at"}
    _org, c, _secret = partner
    _guarded(session, c, client_cache.guard_values(c))
    for name in client_cache.GUARDED_COLUMNS:
        guard = client_cache.guard_values(c)
        guard["client_" + name] = _other(guard["client_" + name])
        with pytest.raises(IntegrityError) as refused:
            _guarded(session, c, guard)
        assert client_cache.refused_by_guard(refused.value), name


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_copy_lives_for_the_bound_and_is_dropped_by_a_change_of_this_process(session, partner):
    from referral_api.auth import token_cache

    _org, c, _secret = partner
    clock = _Clock()
    cache = ClientCache(5, clock=clock)
    cache.put(c, generation=token_cache.generation())
    copy = cache.get(c.client_id)
    assert copy is not None and copy is not cache.get(c.client_id)  # a new object each time
    assert copy.id == c.id and copy.organisation.is_active and sa.inspect(copy).detached
    assert copy.organisation.kind == c.organisation.kind
    clock.now += 5
    assert cache.get(c.client_id) is None
    cache.put(c, generation=token_cache.generation())
    token_cache.invalidate_all()  # a change of this process to a client, organisation, person or token
    assert cache.get(c.client_id) is None
    read_at = token_cache.generation()
    token_cache.invalidate_all()
    cache.put(c, generation=read_at)  # read before a change: not remembered
    assert cache.get(c.client_id) is None and len(cache) == 0


def test_on_a_database_of_its_own_a_change_committed_elsewhere_is_seen_at_once(backend, tmp_path):
    """Outside the shared test transaction (PostgreSQL: the token's INSERT and the audit call as one
    statement of its own): what another connection commits is what the next grant gets."""
    with migrated_app(backend, tmp_path) as app:
        db = database(app)
        with app.app_context(), db.sessionmaker() as s:
            org = h.organisation(s)
            issued = services.create_client(s, organisation=str(org.id), name="partner system",
                                            scopes=["referrals:submit", "cases:status"])
            s.commit()
            client_id, secret, pk = issued.client.client_id, issued.client_secret, issued.client.id
        http = app.test_client()

        def grant():
            return http.post("/oauth/token", data=GRANT, headers=h.basic(client_id, secret))

        assert grant().status_code == 200
        with db.engine.begin() as other:
            _elsewhere(other, Client, Client.__table__.c.id == pk, scope="cases:status")
        narrowed = grant()
        assert narrowed.status_code == 200 and narrowed.get_json()["scope"] == "cases:status"
        with db.engine.begin() as other:
            _elsewhere(other, Client, Client.__table__.c.id == pk, revoked_at=utcnow())
        with db.sessionmaker() as s:
            before = _issued(s, pk, client_id)
        assert grant().status_code == 401
        with db.sessionmaker() as s:
            assert _issued(s, pk, client_id) == before
            assert audit.verify(s).ok
