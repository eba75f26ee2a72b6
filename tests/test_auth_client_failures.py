"""Failed client authentication tells nothing about the client named, and costs only its caller: one
answer whatever the client's state, limits keyed by the id a client proved (or, for failures, by the id
as Authlib reads it), the guessing limits and the audit at the introspection and revocation endpoints
too, and credentials that cannot be decoded answered 400, not 500."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.auth.server import CLIENT_AUTH_FAILED
from tests import oauth_helpers as h

ISSUER = "http://localhost"
FORM = {"grant_type": "client_credentials"}
ELSEWHERE = {"REMOTE_ADDR": "198.51.100.20"}


@pytest.fixture()
def limit(base_app):
    """Set rate limits of the app for one test."""
    before: dict[str, object] = {}
    missing = object()

    def set_limit(name: str, rate: str) -> None:
        before.setdefault(name, base_app.config.get(name, missing))
        base_app.config[name] = rate

    yield set_limit
    for name, value in before.items():  # the app is shared: put back what was there
        if value is missing:
            base_app.config.pop(name, None)
        else:
            base_app.config[name] = value


def _raw_basic(user: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def _spelled(client_id: str, index: int) -> str:
    """The same client id with one character percent-encoded (RFC 6749 2.3.1: Authlib decodes it)."""
    return f"{client_id[:index]}%{ord(client_id[index]):02X}{client_id[index + 1:]}"


def _answer(response) -> tuple[int, str, str]:
    body = response.get_json()
    return response.status_code, body["error"], body.get("error_description", "")


def test_every_failed_client_authentication_gets_the_same_answer(client, session):
    org = h.organisation(session)
    known, _ = h.secret_client(session, org)
    revoked, revoked_secret = h.secret_client(session, org)
    revoked.revoked_at = datetime.now(UTC)
    posting, _ = h.secret_client(session, org, auth_method="client_secret_post")
    key = h.ec_key()
    signing = h.jwt_client(session, org, key)
    session.commit()
    forged = h.ec_key()
    answers = {
        "unknown": client.post("/oauth/token", data=FORM, headers=h.basic("cl_" + "x" * 22, "y" * 43)),
        "wrong secret": client.post("/oauth/token", data=FORM, headers=h.basic(known.client_id, "y" * 43)),
        "revoked": client.post("/oauth/token", data=FORM, headers=h.basic(revoked.client_id, revoked_secret)),
        "post, unknown": client.post("/oauth/token", data={**FORM, "client_id": "cl_" + "x" * 22,
                                                           "client_secret": "y" * 43}),
        "post, wrong secret": client.post("/oauth/token", data={**FORM, "client_id": posting.client_id,
                                                                "client_secret": "y" * 43}),
        **{f"assertion naming {name}": client.post("/oauth/token", data={
            **FORM, **h.assertion_form(client_id, forged, aud=ISSUER)})
           for name, client_id in (("nobody", "cl_" + "x" * 22), ("a secret client", known.client_id),
                                   ("a key client", signing.client_id))},
        "introspection, unknown": client.post("/oauth/introspect", data={"token": "t"},
                                              headers=h.basic("cl_" + "x" * 22, "y" * 43)),
        "revocation, wrong secret": client.post("/oauth/revoke", data={"token": "t"},
                                                headers=h.basic(known.client_id, "y" * 43)),
    }
    seen = {name: _answer(response) for name, response in answers.items()}
    assert set(seen.values()) == {(401, "invalid_client", CLIENT_AUTH_FAILED)}, seen


def test_naming_another_client_costs_that_client_nothing(client, session, limit):
    victim, victim_secret = h.secret_client(session, h.organisation(session))
    key = h.ec_key()
    signing = h.jwt_client(session, h.organisation(session), key)
    posting, posting_secret = h.secret_client(session, h.organisation(session),
                                              auth_method="client_secret_post")
    session.commit()
    limit("AUTH_RATELIMIT_TOKEN_PER_CLIENT", "2/minute")
    for _ in range(2):  # each authenticates as itself, naming the victim
        assert client.post("/oauth/token", data={**FORM, "client_id": victim.client_id,
                                                 **h.assertion_form(signing.client_id, key, aud=ISSUER)}
                           ).status_code == 200
        assert client.post(f"/oauth/token?client_id={victim.client_id}",
                           data={**FORM, "client_id": posting.client_id, "client_secret": posting_secret}
                           ).status_code == 200
    own = [client.post("/oauth/token", data=FORM, headers=h.basic(victim.client_id, victim_secret),
                       environ_base=ELSEWHERE).status_code for _ in range(3)]
    assert own == [200, 200, 429]


def test_no_spelling_of_its_id_gives_a_client_a_fresh_quota(client, session, limit):
    c, secret = h.secret_client(session, h.organisation(session))
    session.commit()
    limit("AUTH_RATELIMIT_TOKEN_PER_CLIENT", "3/minute")
    plain = [client.post("/oauth/token", data=FORM, headers=h.basic(c.client_id, secret)).status_code
             for _ in range(3)]
    assert plain == [200, 200, 200]
    spelled = client.post("/oauth/token", data=FORM, headers=_raw_basic(_spelled(c.client_id, 4), secret))
    assert spelled.status_code == 429
    assert spelled.headers["Content-Type"] == "application/problem+json"
    assert int(spelled.headers["Retry-After"]) >= 1
    assert spelled.get_json()["type"].endswith("/too_many_requests")


def test_failures_at_one_client_count_together_however_its_id_is_spelled(client, session, limit):
    c, secret = h.secret_client(session, h.organisation(session))
    session.commit()
    limit("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", "3/minute")
    guesses = [client.post("/oauth/token", data=FORM,
                           headers=_raw_basic(_spelled(c.client_id, index), "y" * 43)).status_code
               for index in range(3, 8)]
    assert guesses == [401, 401, 401, 429, 429]
    # the client itself, from its own address, is not refused
    assert client.post("/oauth/token", data=FORM, headers=h.basic(c.client_id, secret),
                       environ_base=ELSEWHERE).status_code == 200
    denied = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth:token:deny")).all()
    assert [(e.client_id, e.details["known_client"], e.details["endpoint"]) for e in denied] == [
        (c.client_id, True, "token")]


@pytest.mark.parametrize("path", ["/oauth/introspect", "/oauth/revoke"])
def test_wrong_secrets_at_introspection_and_revocation_are_limited_and_audited(path, client, session, limit):
    c, secret = h.secret_client(session, h.organisation(session))
    session.commit()
    limit("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", "3/minute")
    guesses = [client.post(path, data={"token": "t"}, headers=h.basic(c.client_id, "y" * 43)).status_code
               for _ in range(4)]
    assert guesses == [401, 401, 401, 429]
    # the token endpoint shares the counter: the same guesser is refused there too
    assert client.post("/oauth/token", data=FORM, headers=h.basic(c.client_id, secret)).status_code == 429
    assert client.post(path, data={"token": "t"}, headers=h.basic(c.client_id, secret),
                       environ_base=ELSEWHERE).status_code == 200
    denied = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "auth:token:deny")).all()
    endpoint = {"/oauth/introspect": "introspection", "/oauth/revoke": "revocation"}[path]
    assert [(e.client_id, e.details["endpoint"]) for e in denied] == [(c.client_id, endpoint)]


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke", "/api/v1/referrals"])
@pytest.mark.parametrize("value", ["Basic Y2zDqDpzZWNyZXQ=\u00e9", "Bearer t\u00f6ken"])
def test_an_authorization_header_that_is_not_ascii_is_a_400_naming_it(path, value, client):
    if path.startswith("/api/"):
        response = client.get(path, headers={"Authorization": value})
    else:
        response = client.post(path, data={"grant_type": "client_credentials", "token": "t"},
                               headers={"Authorization": value})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["error"] == "invalid_request" and "Authorization" in body["errors"]
    assert value not in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/oauth/token", "/oauth/introspect", "/oauth/revoke"])
def test_basic_credentials_that_are_not_utf8_are_a_400_not_a_crash(path, client):
    value = "Basic " + base64.b64encode(b"\xff\xfe:\xc3").decode()
    response = client.post(path, data={"grant_type": "client_credentials", "token": "t"},
                           headers={"Authorization": value})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["error"] == "invalid_request" and body["errors"] == {
        "Authorization": ["Basic credentials must be UTF-8."]}


def test_credentials_of_two_methods_are_refused_before_either_is_checked(client, session, limit):
    # RFC 6749 2.3. Authlib tries each method in turn: a wrong secret of the victim beside the good
    # credentials of the caller's own client got a token, and the guess counted nowhere.
    victim, _ = h.secret_client(session, h.organisation(session), auth_method="client_secret_post")
    own, own_secret = h.secret_client(session, h.organisation(session), auth_method="client_secret_post")
    key = h.ec_key()
    signing = h.jwt_client(session, h.organisation(session), key)
    session.commit()
    limit("AUTH_RATELIMIT_TOKEN_FAILURES_PER_CLIENT_ADDRESS", "3/minute")
    guess = {**FORM, "client_id": victim.client_id, "client_secret": "y" * 43}
    mixed = [
        client.post("/oauth/token", data={**FORM, "client_id": own.client_id, "client_secret": own_secret},
                    headers=_raw_basic(victim.client_id, "y" * 43)),
        client.post("/oauth/token", data=guess, headers=_raw_basic("decoy", "")),
        client.post("/oauth/token", data={**guess, **h.assertion_form(signing.client_id, key, aud=ISSUER)}),
    ]
    assert [_answer(r) for r in mixed] == [(401, "invalid_client", CLIENT_AUTH_FAILED)] * 3
    # no secret was checked; the first one, whose Basic header named the victim, counted against it
    assert [client.post("/oauth/token", data=guess).status_code for _ in range(3)] == [401, 401, 429]


def test_basic_credentials_after_a_tab_are_checked_as_authlib_reads_them(client):
    value = "Basic\t" + base64.b64encode(b"\xff\xfe:\xc3").decode()
    response = client.post("/oauth/token", data=FORM, headers={"Authorization": value})
    assert response.status_code == 400
    assert response.get_json()["errors"] == {"Authorization": ["Basic credentials must be UTF-8."]}
