"""Resource protection: every /api/v1 route names its scope; bad tokens are 401 invalid_token."""

from __future__ import annotations

import json
import re

import pytest
from flask_restx import Namespace, Resource

from referral_api import create_app
from referral_api.access import ALL_SCOPES, Role, require_scope
from referral_api.http import API_PREFIX
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h


def api_routes(app):
    """(rule, method, view method) of every /api/v1 route of the app."""
    out = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(API_PREFIX):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            fn = getattr(view_class, method.lower(), None) if view_class else view
            out.append((rule, method, fn))
    return out


def unguarded(app):
    return [f"{m} {r.rule}" for r, m, fn in api_routes(app)
            if not (getattr(fn, "__required_scopes__", None) or set()) <= ALL_SCOPES
            or not getattr(fn, "__required_scopes__", None)]


def _concrete(rule) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", "00000000-0000-0000-0000-000000000000", rule.rule)


def test_every_api_route_names_a_scope(app):
    routes = api_routes(app)
    assert routes, "no /api/v1 routes found: the walk itself is broken"
    assert unguarded(app) == []


def test_every_api_route_refuses_a_request_without_token(app, client):
    for rule, method, _fn in api_routes(app):
        response = client.open(_concrete(rule), method=method, json={} if method != "GET" else None)
        assert response.status_code == 401, f"{method} {rule.rule} answered {response.status_code}"
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")
        assert response.mimetype == "application/problem+json"


def test_the_walk_sees_a_route_without_scope(tmp_path):
    """The URL-map check can fail: an unguarded route added to an app is reported."""
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'x.sqlite3'}",
                      "instance_path": str(tmp_path), "TESTING": True})
    api = app.extensions["referral_api.api"]
    ns = Namespace("leak", path="/api/v1")

    @ns.route("/leak")
    class Leak(Resource):
        def get(self):
            """Leaks."""
            return {}

    api.add_namespace(ns)
    assert unguarded(app) == ["GET /api/v1/leak"]


def test_require_scope_must_name_a_scope():
    with pytest.raises(TypeError):
        require_scope()
    with pytest.raises(TypeError):
        require_scope("referrals:read", any_of=["cases:read"])
    with pytest.raises(ValueError, match="unknown"):
        require_scope("referrals:everything")
    with pytest.raises(ValueError):
        require_scope(any_of=[])


def _token(client, session, org=None, scopes=h.PARTNER_SCOPES):
    org = org or h.organisation(session)
    c, secret = h.secret_client(session, org, scopes=scopes)
    body = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                       headers=h.basic(c.client_id, secret)).get_json()
    return org, c, body["access_token"]


def test_missing_and_unknown_tokens_are_invalid_token_problems(client):
    for headers in ({}, h.bearer("not-a-token"), {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith(
            'Bearer realm="referral-api", error="invalid_token"')
        body = response.get_json()
        assert response.mimetype == "application/problem+json"
        assert body["status"] == 401 and body["error"] == "invalid_token" and body["instance"] == "/api/v1/me"


def test_token_in_the_query_string_is_refused(client, session):
    _org, _c, token = _token(client, session)
    response = client.get("/api/v1/me", query_string={"access_token": token})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    # Even with a good header, a token in the URL is refused: it would sit in logs and histories.
    both = client.get("/api/v1/me", query_string={"access_token": token}, headers=h.bearer(token))
    assert both.status_code == 401


def test_token_of_a_suspended_organisation_is_refused_at_the_next_request(client, session, run_cli):
    org, _c, token = _token(client, session)
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 200
    assert run_cli("orgs", "suspend", str(org.id)).exit_code == 0
    response = client.get("/api/v1/me", headers=h.bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["error"] == "invalid_token"


def test_token_of_a_revoked_client_is_refused(client, session, run_cli):
    _org, c, token = _token(client, session)
    assert run_cli("clients", "revoke", c.client_id).exit_code == 0
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 401


def test_token_of_a_person_of_a_suspended_organisation_or_deactivated_is_refused(client, session):
    from referral_api.auth import services

    mgec = h.organisation(session, OrganisationKind.MGEC)
    partner = h.organisation(session, OrganisationKind.POLICE)  # an embassy officer would need TOTP
    c, secret = h.login_client(session, mgec, scopes="referrals:read cases:read")
    user, _ = h.person(session, partner, Role.PARTNER_OFFICER)
    verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge,
                                                                   scope="referrals:read"), email=user.email)
    code = h.code_from(response.headers["Location"])["code"]
    token = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier}).get_json()["access_token"]
    me = client.get("/api/v1/me", headers=h.bearer(token)).get_json()
    # A person's token speaks for the person's organisation, whichever client they logged in through.
    assert me["organisation"] == {"id": str(partner.id), "kind": "police"}
    partner.suspend()
    session.commit()
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 401
    partner.activate()
    session.commit()
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 200
    services.deactivate_user(session, user.email)
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 401


def test_insufficient_scope_is_403_with_the_bearer_header(app, session, tmp_path):
    from referral_api.db import database

    # A second app on the test's connection, with one more route added before its first request.
    probe_app = create_app({"database_url": database(app).url, "instance_path": str(tmp_path),
                            "TESTING": True})
    database(probe_app).sessionmaker = database(app).sessionmaker
    api = probe_app.extensions["referral_api.api"]
    ns = Namespace("probe", path="/api/v1")

    @ns.route("/probe-review")
    class Probe(Resource):
        @require_scope("referrals:review")
        def get(self):
            """Probe."""
            return {"ok": True}

    api.add_namespace(ns)
    client = probe_app.test_client()
    _org, _c, token = _token(client, session)
    response = client.get("/api/v1/probe-review", headers=h.bearer(token))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope", scope="referrals:review"')
    body = json.loads(response.get_data())
    assert body["error"] == "insufficient_scope" and body["status"] == 403


def test_expired_token_is_refused(client, session):
    from datetime import timedelta

    import sqlalchemy as sa

    from referral_api.auth.models import Token

    _org, _c, token = _token(client, session)
    row = session.scalar(sa.select(Token))
    row.issued_at = row.issued_at - timedelta(seconds=901)
    session.commit()
    assert client.get("/api/v1/me", headers=h.bearer(token)).status_code == 401


def test_access_log_carries_the_client_id(client, session, caplog):
    _org, c, token = _token(client, session)
    with caplog.at_level("INFO", logger="referral_api.access"):
        client.get("/api/v1/me", headers=h.bearer(token))
    logged = [r.client_id for r in caplog.records
              if r.name == "referral_api.access" and r.path == "/api/v1/me"]
    assert logged == [c.client_id]


def test_scope_table_keeps_person_only_scopes_from_systems_and_roles():
    from referral_api.access import PERSON_ONLY_SCOPES, ROLE_SCOPES, effective_scopes

    systems = effective_scopes(ALL_SCOPES, client_scopes=ALL_SCOPES, role=None)
    assert systems == ALL_SCOPES - PERSON_ONLY_SCOPES
    assert effective_scopes(ALL_SCOPES, client_scopes=ALL_SCOPES, role=Role.MGEC_ADMIN) == ALL_SCOPES
    assert not ROLE_SCOPES[Role.PARTNER_OFFICER] & PERSON_ONLY_SCOPES
    assert "referrals:review" in ROLE_SCOPES[Role.MGEC_COORDINATOR]
    assert {r for r, s in ROLE_SCOPES.items() if "admin" in s or "audit:read" in s} == {Role.MGEC_ADMIN}
    assert effective_scopes(["referrals:review", "cases:read"], client_scopes=["cases:read"],
                            role=Role.MGEC_COORDINATOR) == {"cases:read"}


def test_rate_limit_storage_can_be_redis(tmp_path):
    import uuid

    import redis
    from limits.storage import RedisStorage

    from referral_api import dbmigrate
    from referral_api.db import database

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    app = create_app({"database_url": f"sqlite:///{tmp_path / 'r.sqlite3'}", "instance_path": str(tmp_path),
                      "ratelimit_storage_uri": "redis://127.0.0.1:6379/0", "TESTING": True,
                      "AUTH_RATELIMIT_TOKEN_PER_ADDRESS": "2/minute"})
    dbmigrate.upgrade(database(app))
    limiter = app.extensions["referral_api.limiter"]
    limiter.key_prefix = f"test-{uuid.uuid4().hex}"  # this test's own counters in the shared Redis
    http = app.test_client()
    statuses = [http.post("/oauth/token", data={"grant_type": "client_credentials"}).status_code
                for _ in range(3)]
    assert isinstance(limiter.storage, RedisStorage)
    assert statuses == [401, 401, 429]
