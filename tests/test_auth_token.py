"""The token endpoint: client credentials, client authentication, scopes, revocation, introspection."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api.auth import jwks
from referral_api.auth.models import Token, UsedAssertion
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

ISSUER = "http://localhost"
TOKEN_URL = ISSUER + "/oauth/token"


def cc_token(http, client_id, secret, scope=None):
    data = {"grant_type": "client_credentials"}
    if scope:
        data["scope"] = scope
    return http.post("/oauth/token", data=data, headers=h.basic(client_id, secret))


def test_client_credentials_with_basic_gives_an_opaque_15_minute_token(client, session):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org)
    response = cc_token(client, c.client_id, secret)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == " ".join(sorted(h.PARTNER_SCOPES.split()))
    assert "refresh_token" not in body
    assert body["access_token"].count(".") == 0  # opaque, not a JWT
    me = client.get("/api/v1/me", headers=h.bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json() == {
        "organisation": {"id": str(org.id), "kind": "ngo"}, "client_id": c.client_id, "user_id": None,
        "role": None, "scopes": sorted(h.PARTNER_SCOPES.split()),
    }


def test_access_token_ttl_setting_is_honoured(base_app, client, session):
    settings = base_app.config["SETTINGS"]
    server = base_app.extensions["referral_api.oauth_server"]
    generator = server._token_generators["default"]
    original = generator.expires_generator
    generator.expires_generator = lambda c, g: 60
    try:
        c, secret = h.secret_client(session, h.organisation(session))
        assert cc_token(client, c.client_id, secret).get_json()["expires_in"] == 60
    finally:
        generator.expires_generator = original
    assert original(None, "client_credentials") == settings.access_token_ttl == 900


def test_client_secret_post(client, session):
    c, secret = h.secret_client(session, h.organisation(session), auth_method="client_secret_post")
    ok = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": c.client_id,
                                          "client_secret": secret})
    assert ok.status_code == 200
    # A client_secret_post client cannot switch to basic.
    assert cc_token(client, c.client_id, secret).get_json()["error"] == "invalid_client"


def test_wrong_secret_is_invalid_client(client, session):
    c, _secret = h.secret_client(session, h.organisation(session))
    response = cc_token(client, c.client_id, "not-the-secret")
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"
    assert response.headers["Content-Type"].startswith("application/json")


def test_revoked_client_and_suspended_organisation_cannot_get_tokens(client, session):
    org = h.organisation(session)
    c, secret = h.secret_client(session, org)
    org.suspend()
    session.commit()
    assert cc_token(client, c.client_id, secret).get_json()["error"] == "invalid_client"


def test_referrals_review_by_client_credentials_is_invalid_scope(client, session):
    # `clients create` refuses person-only scopes to a client-credentials-only client; one that also
    # logs people in holds them, and its client-credentials tokens still never get them.
    c, secret = h.secret_client(session, h.organisation(session), scopes="referrals:read referrals:review",
                                grant_types="client_credentials authorization_code",
                                redirect_uris=[h.REDIRECT_URI])
    response = cc_token(client, c.client_id, secret, scope="referrals:read referrals:review")
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_scope"
    # Without a scope parameter, the client's scopes are granted minus the person-only ones.
    default = cc_token(client, c.client_id, secret).get_json()
    assert default["scope"] == "referrals:read"


def test_scopes_beyond_the_clients_are_dropped_and_unknown_ones_refused(client, session):
    c, secret = h.secret_client(session, h.organisation(session), scopes="referrals:read")
    granted = cc_token(client, c.client_id, secret, scope="referrals:read cases:update").get_json()
    assert granted["scope"] == "referrals:read"
    assert cc_token(client, c.client_id, secret, scope="cases:update").get_json()["error"] == "invalid_scope"
    assert cc_token(client, c.client_id, secret, scope="everything").get_json()["error"] == "invalid_scope"


def test_no_password_or_implicit_grant(client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    response = client.post("/oauth/token", data={"grant_type": "password", "username": "u", "password": "p"},
                           headers=h.basic(c.client_id, secret))
    assert response.get_json()["error"] == "unsupported_grant_type"
    implicit = client.get("/oauth/authorize",
                          query_string={"response_type": "token", "client_id": c.client_id})
    assert implicit.status_code == 400 and implicit.get_json()["error"] == "unsupported_response_type"


# ---------------------------------------------------------------- private_key_jwt


@pytest.mark.parametrize(
    ("make_key", "alg"), [(h.ec_key, "ES256"), (h.rsa_key, "PS256"), (h.ed_key, "EdDSA")]
)
def test_private_key_jwt_with_the_issuer_as_audience(client, session, make_key, alg):
    key = make_key()
    c = h.jwt_client(session, h.organisation(session), key)
    response = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                                 **h.assertion_form(c.client_id, key, aud=ISSUER, alg=alg)})
    assert response.status_code == 200, response.get_json()
    assert session.scalar(sa.select(sa.func.count()).select_from(UsedAssertion)) == 1


def test_private_key_jwt_accepts_the_token_endpoint_as_audience_and_nothing_else(client, session):
    key = h.ec_key()
    c = h.jwt_client(session, h.organisation(session), key)
    ok = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                           **h.assertion_form(c.client_id, key, aud=TOKEN_URL)})
    assert ok.status_code == 200
    wrong = client.post("/oauth/token", data={"grant_type": "client_credentials",
                                              **h.assertion_form(c.client_id, key, aud="https://evil.example")})
    assert wrong.get_json()["error"] == "invalid_client"


def test_hs256_client_assertion_is_invalid_client(client, session):
    from joserfc.jwk import OctKey

    key = h.ec_key()
    c = h.jwt_client(session, h.organisation(session), key)
    hmac_key = OctKey.import_key("a shared secret that is long enough for HS256!!")
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials",
        **h.assertion_form(c.client_id, hmac_key, aud=ISSUER, alg="HS256"),
    })
    # every failed client authentication gets the same 401 (RFC 6749 5.2 allows it without the header)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_rs256_client_assertion_is_invalid_client(client, session):
    key = h.rsa_key()
    c = h.jwt_client(session, h.organisation(session), key)
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", **h.assertion_form(c.client_id, key, aud=ISSUER, alg="RS256"),
    })
    assert response.get_json()["error"] == "invalid_client"


def test_replayed_client_assertion_is_invalid_client(client, session):
    key = h.ec_key()
    c = h.jwt_client(session, h.organisation(session), key)
    form = {"grant_type": "client_credentials", **h.assertion_form(c.client_id, key, aud=ISSUER)}
    assert client.post("/oauth/token", data=form).status_code == 200
    replay = client.post("/oauth/token", data=form)
    assert replay.status_code == 401  # every failed client authentication alike
    assert replay.get_json()["error"] == "invalid_client"


def test_assertion_signed_by_another_key_is_invalid_client(client, session):
    c = h.jwt_client(session, h.organisation(session), h.ec_key())
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", **h.assertion_form(c.client_id, h.ec_key(), aud=ISSUER),
    })
    assert response.get_json()["error"] == "invalid_client"


def test_long_lived_assertion_is_invalid_client(client, session):
    key = h.ec_key()
    c = h.jwt_client(session, h.organisation(session), key)
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", **h.assertion_form(c.client_id, key, aud=ISSUER, exp_in=7200),
    })
    assert response.get_json()["error"] == "invalid_client"


def test_private_key_jwt_client_cannot_fall_back_to_a_secret(client, session):
    key = h.ec_key()
    c = h.jwt_client(session, h.organisation(session), key)
    for headers in (h.basic(c.client_id, ""), h.basic(c.client_id, "guess")):
        response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
        assert response.get_json()["error"] == "invalid_client"
    post = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": c.client_id,
                                             "client_secret": "guess"})
    assert post.get_json()["error"] == "invalid_client"


def test_secret_client_cannot_use_an_assertion(client, session):
    c, _secret = h.secret_client(session, h.organisation(session))
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials", **h.assertion_form(c.client_id, h.ec_key(), aud=ISSUER),
    })
    assert response.get_json()["error"] == "invalid_client"


def test_jwks_uri_is_fetched_for_the_keys(client, session, monkeypatch):
    from referral_api.auth import services
    from referral_api.auth.models import ClientAuthMethod

    key = h.ec_key()
    issued = services.create_client(session, organisation=str(h.organisation(session).id), name="uri client",
                                     scopes=["referrals:read"], auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
                                     jwks_uri="https://partner.example/jwks.json")
    fetched = []

    def fake_fetch(uri, *, allow_http_loopback):
        fetched.append(uri)
        return {"keys": [key.as_dict(private=False)]}, None

    monkeypatch.setattr(jwks, "CACHE", jwks.JwksCache(fetcher=fake_fetch))
    response = client.post("/oauth/token", data={
        "grant_type": "client_credentials",
        **h.assertion_form(issued.client.client_id, key, aud=ISSUER),
    })
    assert response.status_code == 200
    assert fetched == ["https://partner.example/jwks.json"]


# ---------------------------------------------------------------- revocation and introspection


def test_revoke_own_token_and_not_anothers(client, session):
    org = h.organisation(session)
    a, a_secret = h.secret_client(session, org)
    b, b_secret = h.secret_client(session, org)
    a_token = cc_token(client, a.client_id, a_secret).get_json()["access_token"]

    # b revoking a's token: 200 (RFC 7009, as for an unknown token) and no effect.
    other = client.post("/oauth/revoke", data={"token": a_token}, headers=h.basic(b.client_id, b_secret))
    assert other.status_code == 200
    assert client.get("/api/v1/me", headers=h.bearer(a_token)).status_code == 200

    own = client.post("/oauth/revoke", data={"token": a_token}, headers=h.basic(a.client_id, a_secret))
    assert own.status_code == 200
    me = client.get("/api/v1/me", headers=h.bearer(a_token))
    assert me.status_code == 401 and 'error="invalid_token"' in me.headers["WWW-Authenticate"]


def test_revoke_and_introspect_need_client_authentication(client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    token = cc_token(client, c.client_id, secret).get_json()["access_token"]
    for path in ("/oauth/revoke", "/oauth/introspect"):
        # RFC 6749 5.2: 401 with a challenge for the scheme the client tried (Basic)
        for headers in ({}, h.basic(c.client_id, "wrong")):
            response = client.post(path, data={"token": token}, headers=headers)
            assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
            assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_introspect_own_token_active_anothers_inactive(client, session):
    org = h.organisation(session)
    a, a_secret = h.secret_client(session, org)
    b, b_secret = h.secret_client(session, org)
    a_token = cc_token(client, a.client_id, a_secret).get_json()["access_token"]

    own = client.post("/oauth/introspect", data={"token": a_token}, headers=h.basic(a.client_id, a_secret))
    body = own.get_json()
    assert body["active"] is True and body["client_id"] == a.client_id
    assert body["scope"] == " ".join(sorted(h.PARTNER_SCOPES.split()))
    assert body["organisation_id"] == str(org.id) and body["exp"] - body["iat"] == 900

    other = client.post("/oauth/introspect", data={"token": a_token}, headers=h.basic(b.client_id, b_secret))
    assert other.status_code == 200 and other.get_json() == {"active": False}
    unknown = client.post("/oauth/introspect", data={"token": "nope"}, headers=h.basic(a.client_id, a_secret))
    assert unknown.get_json() == {"active": False}


def test_introspection_says_inactive_once_the_organisation_is_suspended(client, session):
    org = h.organisation(session)
    a, a_secret = h.secret_client(session, org)
    token = cc_token(client, a.client_id, a_secret).get_json()["access_token"]
    mgec = h.organisation(session, OrganisationKind.MGEC)
    rs, rs_secret = h.secret_client(session, mgec)
    org.suspend()
    session.commit()
    # The suspended organisation's client can no longer even authenticate; MGEC's cannot see it either.
    response = client.post("/oauth/introspect", data={"token": token},
                           headers=h.basic(rs.client_id, rs_secret))
    assert response.get_json() == {"active": False}


def test_metadata_document(client):
    meta = client.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["issuer"] == ISSUER
    assert meta["token_endpoint"] == TOKEN_URL
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["grant_types_supported"] == ["authorization_code", "client_credentials", "refresh_token"]
    assert set(meta["token_endpoint_auth_signing_alg_values_supported"]) == {"PS256", "ES256", "EdDSA"}
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert "referrals:review" in meta["scopes_supported"]


def test_token_endpoint_is_rate_limited_per_client_with_retry_after(base_app, client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    base_app.config["AUTH_RATELIMIT_TOKEN_PER_CLIENT"] = "3/minute"
    try:
        statuses = [cc_token(client, c.client_id, secret).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        limited = cc_token(client, c.client_id, secret)
        assert limited.headers["Content-Type"] == "application/problem+json"
        assert int(limited.headers["Retry-After"]) > 0
        # Another client from the same address still gets through.
        other, other_secret = h.secret_client(session, h.organisation(session))
        assert cc_token(client, other.client_id, other_secret).status_code == 200
    finally:
        base_app.config.pop("AUTH_RATELIMIT_TOKEN_PER_CLIENT")


def test_token_endpoint_is_rate_limited_per_address(base_app, client, session):
    base_app.config["AUTH_RATELIMIT_TOKEN_PER_ADDRESS"] = "2/minute"
    try:
        clients = [h.secret_client(session, h.organisation(session)) for _ in range(3)]
        statuses = [cc_token(client, c.client_id, s).status_code for c, s in clients]
        assert statuses == [200, 200, 429]
    finally:
        base_app.config.pop("AUTH_RATELIMIT_TOKEN_PER_ADDRESS")


def test_throughput_limits_keep_two_counters_a_key_and_guessing_limits_an_exact_window(base_app, client,
                                                                                        session):
    """The throughput limits hold constant state per key whatever the rate (a moving window kept an
    entry per request); a failed authentication is still counted exactly, one entry each."""
    storage = base_app.extensions["referral_api.limiter"].storage
    base_app.config["AUTH_RATELIMIT_TOKEN_PER_CLIENT"] = "1000/minute"
    base_app.config["AUTH_RATELIMIT_TOKEN_PER_ADDRESS"] = "1000/minute"
    try:
        c, secret = h.secret_client(session, h.organisation(session))
        assert [cc_token(client, c.client_id, secret).status_code for _ in range(12)] == [200] * 12
        for scope in ("token-address", "token-client"):
            assert not [k for k, entries in storage.events.items() if scope in k and entries], scope
            counters = {k: n for k, n in storage.storage.items() if f"/{scope}/" in k}
            assert sum(counters.values()) == 12 and len(counters) <= 2, counters
        assert cc_token(client, c.client_id, "not-the-secret").status_code == 401
        failures = [entries for k, entries in storage.events.items() if "token-fail-client-address" in k]
        assert [len(entries) for entries in failures] == [1]
    finally:
        base_app.config.pop("AUTH_RATELIMIT_TOKEN_PER_CLIENT")
        base_app.config.pop("AUTH_RATELIMIT_TOKEN_PER_ADDRESS")


def test_tokens_are_stored_with_their_client(session, client):
    c, secret = h.secret_client(session, h.organisation(session))
    cc_token(client, c.client_id, secret)
    rows = session.scalars(sa.select(Token)).all()
    assert [r.client_pk for r in rows] == [c.id]


def test_a_deployment_can_require_private_key_jwt(app, session, tmp_path):
    from referral_api import create_app
    from referral_api.cli import cli
    from referral_api.db import database

    strict = create_app({"database_url": database(app).url, "instance_path": str(tmp_path),
                         "require_private_key_jwt": True, "TESTING": True})
    database(strict).sessionmaker = database(app).sessionmaker  # the test's connection
    http = strict.test_client()
    org = h.organisation(session)
    c, secret = h.secret_client(session, org)
    for data, headers in (({}, h.basic(c.client_id, secret)),
                          ({"client_id": c.client_id, "client_secret": secret}, {})):
        form = {"grant_type": "client_credentials", **data}
        response = http.post("/oauth/token", data=form, headers=headers)
        assert response.get_json()["error"] == "invalid_client"
    key = h.ec_key()
    jc = h.jwt_client(session, org, key)
    ok = http.post("/oauth/token", data={"grant_type": "client_credentials",
                                         **h.assertion_form(jc.client_id, key, aud=ISSUER)})
    assert ok.status_code == 200
    meta = http.get("/.well-known/oauth-authorization-server").get_json()
    assert meta["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    created = strict.test_cli_runner().invoke(cli, ["clients", "create", "--org", str(org.id), "--name", "s",
                                                    "--scopes", "referrals:read"])
    assert created.exit_code == 1 and "requires private_key_jwt" in created.output
