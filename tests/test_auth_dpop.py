"""DPoP (RFC 9449): tokens bound to a proof key at the token endpoint, and proofs checked at the API."""

from __future__ import annotations

import dataclasses
import json
import time

import sqlalchemy as sa

from referral_api.auth.models import Client, Token
from tests import dpop_helpers as d
from tests import oauth_helpers as h


def _bound_token(client, session, key=None):
    c, secret = d.dpop_client(session)
    key = key or h.ec_key()
    response = d.token_request(client, c, secret, key)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"], key, c


def test_require_dpop_client_gets_a_dpop_token_bound_to_the_key_thumbprint(client, session):
    c, secret = d.dpop_client(session)
    key = h.ec_key()
    body = d.token_request(client, c, secret, key).get_json()
    assert body["token_type"] == "DPoP"
    row = session.scalar(sa.select(Token).where(Token.client_pk == c.id))
    assert row.dpop_jkt == key.thumbprint()
    me = client.get("/api/v1/me", headers=d.dpop_headers(body["access_token"], key))
    assert me.status_code == 200, me.get_json()
    assert me.get_json()["client_id"] == c.client_id
    introspected = client.post("/oauth/introspect", data={"token": body["access_token"]},
                               headers=h.basic(c.client_id, secret)).get_json()
    assert introspected["token_type"] == "DPoP" and introspected["cnf"] == {"jkt": key.thumbprint()}


def test_each_asymmetric_algorithm_is_accepted(client, session):
    for key, alg in ((h.rsa_key(), "PS256"), (h.ed_key(), "EdDSA")):
        c, secret = d.dpop_client(session)
        response = d.token_request(client, c, secret, key, alg=alg)
        assert response.get_json()["token_type"] == "DPoP", alg
        token = response.get_json()["access_token"]
        assert client.get("/api/v1/me", headers=d.dpop_headers(token, key, alg=alg)).status_code == 200


def test_require_dpop_client_without_a_proof_is_refused(client, session):
    c, secret = d.dpop_client(session)
    response = d.token_request(client, c, secret)
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_dpop_proof"
    assert session.scalar(sa.select(Token).where(Token.client_pk == c.id)) is None


def test_token_request_proofs_are_checked(client, session):
    c, secret = d.dpop_client(session)
    key = h.ec_key()
    bad = [
        {"typ": "JWT"},
        {"htu": "http://localhost/oauth/other"},
        # not URLs urllib can take apart (a port out of range or not a number, a broken IPv6 host)
        {"htu": "http://localhost:99999/oauth/token"},
        {"htu": "http://localhost:abc/oauth/token"},
        {"htu": "http://[::1/oauth/token"},
        {"htm": "GET"},
        {"iat": time.time() - 3600},
        {"iat": time.time() + 3600},
        {"jwk": h.ec_key().as_dict(private=False)},  # signed by another key than the one it carries
        {"jwk": key.as_dict(private=True)},  # a private key is never sent
    ]
    for change in bad:
        kwargs = dict(change)
        url = kwargs.pop("htu", d.ORIGIN + "/oauth/token")
        method = kwargs.pop("htm", "POST")
        headers = {**h.basic(c.client_id, secret), "DPoP": d.proof(key, method, url, **kwargs)}
        response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
        assert response.status_code == 400, change
        assert response.get_json()["error"] == "invalid_dpop_proof", change


def test_hs256_proof_is_refused(client, session):
    from joserfc.jwk import OctKey

    c, secret = d.dpop_client(session)
    key = OctKey.generate_key(256)
    headers = {**h.basic(c.client_id, secret),
               "DPoP": d.proof(key, "POST", d.ORIGIN + "/oauth/token", alg="HS256", jwk={"kty": "oct"})}
    response = client.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_dpop_proof"


def test_a_plain_client_gets_a_bearer_token_unless_it_sends_a_proof(client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    plain = d.token_request(client, c, secret).get_json()
    assert plain["token_type"] == "Bearer"
    key = h.ec_key()
    bound = d.token_request(client, c, secret, key).get_json()
    assert bound["token_type"] == "DPoP"


def test_replayed_proof_is_refused(client, session):
    token, key, _ = _bound_token(client, session)
    headers = d.dpop_headers(token, key)
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    again = client.get("/api/v1/me", headers=headers)
    assert again.status_code == 401
    assert again.get_json()["error"] == "invalid_dpop_proof"
    assert again.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')


def test_proof_for_another_url_or_method_or_stale_or_wrong_ath_is_refused(client, session):
    token, key, _ = _bound_token(client, session)
    cases = {
        "wrong url": {"Authorization": f"DPoP {token}",
                      "DPoP": d.proof(key, "GET", d.ORIGIN + "/api/v1/referrals", token=token)},
        "wrong method": {"Authorization": f"DPoP {token}",
                         "DPoP": d.proof(key, "POST", d.ORIGIN + "/api/v1/me", token=token)},
        "stale iat": d.dpop_headers(token, key, iat=time.time() - 600),
        "wrong ath": {"Authorization": f"DPoP {token}",
                      "DPoP": d.proof(key, "GET", d.ORIGIN + "/api/v1/me", token=token + "x")},
        "no ath": {"Authorization": f"DPoP {token}", "DPoP": d.proof(key, "GET", d.ORIGIN + "/api/v1/me")},
        "no proof": {"Authorization": f"DPoP {token}"},
    }
    for name, headers in cases.items():
        response = client.get("/api/v1/me", headers=headers)
        assert response.status_code == 401, name
        assert response.get_json()["error"] == "invalid_dpop_proof", name
        assert response.headers["WWW-Authenticate"].startswith("DPoP "), name
    # the query string is not part of htu
    ok = client.get("/api/v1/me?x=1", headers=d.dpop_headers(token, key))
    assert ok.status_code == 200


def test_stolen_token_with_another_key_is_refused(client, session):
    token, _key, _ = _bound_token(client, session)
    thief = h.ec_key()
    response = client.get("/api/v1/me", headers=d.dpop_headers(token, thief))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_dpop_proof"


def test_dpop_bound_token_used_as_bearer_is_refused(client, session):
    token, _key, _ = _bound_token(client, session)
    response = client.get("/api/v1/me", headers=h.bearer(token))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


def test_bearer_token_sent_with_the_dpop_scheme_is_refused(client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    token = d.token_request(client, c, secret).get_json()["access_token"]
    response = client.get("/api/v1/me", headers=d.dpop_headers(token, h.ec_key()))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith('DPoP error="invalid_token"')


def _nonce_flow(client, c, secret, key):
    first = d.token_request(client, c, secret, key)
    assert first.status_code == 400 and first.get_json()["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    assert d.token_request(client, c, secret, key, nonce="not-ours").get_json()["error"] == "use_dpop_nonce"
    second = d.token_request(client, c, secret, key, nonce=nonce)
    assert second.status_code == 200, second.get_json()
    token = second.get_json()["access_token"]
    api = client.get("/api/v1/me", headers=d.dpop_headers(token, key))
    assert api.status_code == 401 and api.get_json()["error"] == "use_dpop_nonce"
    assert 'DPoP error="use_dpop_nonce"' in api.headers["WWW-Authenticate"]
    again = client.get("/api/v1/me", headers=d.dpop_headers(token, key, nonce=api.headers["DPoP-Nonce"]))
    assert again.status_code == 200


def test_per_client_nonce_flow(client, session):
    c, secret = d.dpop_client(session, nonce=True)
    _nonce_flow(client, c, secret, h.ec_key())


def test_nonce_required_setting_and_previous_window_nonce(app, client, session, monkeypatch):
    from referral_api.auth import dpop

    settings = app.config["SETTINGS"]
    monkeypatch.setitem(app.config, "SETTINGS", dataclasses.replace(settings, dpop_nonce_required=True))
    c, secret = d.dpop_client(session)
    key = h.ec_key()
    _nonce_flow(client, c, secret, key)
    with app.app_context():
        window = int(time.time() // dpop.NONCE_WINDOW_SECONDS)
        previous, too_old = dpop.nonce_for(window - 1), dpop.nonce_for(window - 2)
    assert d.token_request(client, c, secret, key, nonce=previous).status_code == 200
    assert d.token_request(client, c, secret, key, nonce=too_old).get_json()["error"] == "use_dpop_nonce"


def test_metadata_advertises_dpop_algorithms(client):
    body = client.get("/.well-known/oauth-authorization-server").get_json()
    assert body["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]


def test_cli_require_dpop(run_cli, session):
    org = h.organisation(session)
    result = run_cli("clients", "create", "--org", str(org.id), "--name", "bound", "--scopes",
                     "referrals:submit", "--require-dpop", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["require_dpop"] is True and payload["dpop_nonce"] is False
    session.expire_all()
    assert session.scalar(sa.select(Client).where(Client.client_id == payload["client_id"])).require_dpop


def test_a_persons_code_and_refresh_token_need_a_proof_and_survive_a_refused_one(client, session):
    from referral_api.access import Role
    from referral_api.auth import services
    from referral_api.organisations.models import OrganisationKind

    mgec = h.organisation(session, OrganisationKind.MGEC)
    issued = services.create_client(
        session, organisation=str(mgec.id), name="bound login", scopes=["referrals:read"],
        grant_types=["authorization_code", "refresh_token"], redirect_uris=[h.REDIRECT_URI],
        require_dpop=True)
    c, secret = issued.client, issued.client_secret
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    verifier, challenge = h.pkce_pair()
    params = h.authorize_params(c.client_id, challenge, scope="referrals:read")
    login = h.login_with_test_client(client, params, email=user.email, totp_code=totp.now())
    form = {"grant_type": "authorization_code", "code": h.code_from(login.headers["Location"])["code"],
            "redirect_uri": h.REDIRECT_URI, "code_verifier": verifier}
    refused = client.post("/oauth/token", data=form, headers=h.basic(c.client_id, secret))
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_dpop_proof"
    key = h.ec_key()

    def with_proof():
        return {**h.basic(c.client_id, secret), "DPoP": d.proof(key, "POST", d.ORIGIN + "/oauth/token")}

    tokens = client.post("/oauth/token", data=form, headers=with_proof()).get_json()  # the code still works
    assert tokens["token_type"] == "DPoP"
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    no_proof = client.post("/oauth/token", data=refresh, headers=h.basic(c.client_id, secret))
    assert no_proof.get_json()["error"] == "invalid_dpop_proof"
    renewed = client.post("/oauth/token", data=refresh, headers=with_proof())
    assert renewed.status_code == 200 and renewed.get_json()["token_type"] == "DPoP"
    me = client.get("/api/v1/me", headers=d.dpop_headers(renewed.get_json()["access_token"], key))
    assert me.status_code == 200 and me.get_json()["user_id"] == str(user.id)
