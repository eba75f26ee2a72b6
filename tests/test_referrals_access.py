"""Who may do what to a referral: every route, organisation and scope, as a table (docs/domain.md)."""

from __future__ import annotations

import pytest

from tests.referral_data import referral_body

STATUS_KEYS = {
    "id",
    "reference",
    "external_reference",
    "status",
    "submitted_at",
    "status_changed_at",
    "decided_at",
    "reject_reason",
    "case_id",
    "erased",
    "erased_at",
}
PARTNER_KEYS = STATUS_KEYS | {
    "concern",
    "source",
    "is_minor",
    "person",
    "situation",
    "consent",
    "legal_basis",
    "minimised",
    "messages",
    "allowed_actions",
}
STAFF_KEYS = PARTNER_KEYS | {
    "submitted_by_organisation_id",
    "age_band",
    "decision_note",
    "possible_duplicates",
}
PERSONAL_KEYS = {"person", "situation", "consent", "messages", "decision_note"}

ACTORS = ["coordinator", "caseworker", "police", "embassy", "iom", "ngo"]

# route -> (method, path suffix, body); the referral was submitted by the police of Macau.
ROUTES = {
    "list": ("get", "", None),
    "read": ("get", "/{id}", None),
    "review": ("post", "/{id}/review", {}),
    "accept": ("post", "/{id}/accept", {}),
    "reject": ("post", "/{id}/reject", {"reason": "other", "note": "Outside MGEC's mandate."}),
    "request-information": ("post", "/{id}/request-information", {"questions": "Passport?"}),
    "information": ("post", "/{id}/information", {"answer": "Passport taken by the recruiter."}),
    "withdraw": ("post", "/{id}/withdraw", {}),
    "matches": ("get", "/{id}/matches", None),
}

# (route, actor) -> (status, key set of a 200 answer). 403: the token lacks the route's scope (or, for a
# visible referral, the move is not the caller's); 404: the caller may not know the referral exists.
EXPECTED = {
    ("list", "coordinator"): (200, STAFF_KEYS),
    ("list", "caseworker"): (200, STAFF_KEYS),
    ("list", "police"): (200, PARTNER_KEYS),
    ("list", "embassy"): (200, None),
    ("list", "iom"): (200, None),
    ("list", "ngo"): (200, None),
    ("read", "coordinator"): (200, STAFF_KEYS),
    ("read", "caseworker"): (200, STAFF_KEYS),
    ("read", "police"): (200, PARTNER_KEYS),
    ("read", "embassy"): (404, None),
    ("read", "iom"): (404, None),
    ("read", "ngo"): (404, None),
    **{
        (move, who): (200 if who == "coordinator" else 403, STAFF_KEYS if who == "coordinator" else None)
        for move in ("review", "accept", "reject", "request-information", "matches")
        for who in ACTORS
    },
    **{
        (move, who): (
            {"police": 200, "coordinator": 403, "caseworker": 403}.get(who, 404),
            PARTNER_KEYS if who == "police" else None,
        )
        for move in ("information", "withdraw")
        for who in ACTORS
    },
}
# withdrawn is final: the partner's answer to its own withdrawal is the status view already
EXPECTED[("withdraw", "police")] = (200, STATUS_KEYS)
MATCHES_KEYS = {"items"}


@pytest.mark.parametrize(("route", "who"), sorted(EXPECTED))
def test_access_table(client, world, route, who):
    created = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police"))
    assert created.status_code == 201
    rid = created.get_json()["id"]
    method, suffix, body = ROUTES[route]
    kwargs = {"headers": world.headers(who)}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)("/api/v1/referrals" + suffix.format(id=rid), **kwargs)
    status, keys = EXPECTED[(route, who)]
    assert response.status_code == status, response.get_json()
    payload = response.get_json()
    if status != 200:
        assert response.mimetype == "application/problem+json"
        assert "Batbayar" not in response.get_data(as_text=True)
        return
    if route == "list":
        items = payload["items"]
        assert [i["id"] for i in items] == ([rid] if keys else [])
        if keys:
            assert set(items[0]) == keys
    elif route == "matches":
        assert set(payload) == MATCHES_KEYS
    else:
        assert set(payload) == keys


@pytest.mark.parametrize("decision", ["accept", "reject", "withdraw"])
def test_after_the_decision_the_partner_sees_the_status_only(client, world, decision):
    rid = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police")).get_json()[
        "id"
    ]
    body = {"reason": "other", "note": "n"} if decision == "reject" else {}
    who = "police" if decision == "withdraw" else "coordinator"
    assert (
        client.post(f"/api/v1/referrals/{rid}/{decision}", json=body, headers=world.headers(who)).status_code
        == 200
    )
    read = client.get(f"/api/v1/referrals/{rid}", headers=world.headers("police")).get_json()
    assert set(read) == STATUS_KEYS and not PERSONAL_KEYS & set(read)
    listed = client.get("/api/v1/referrals", headers=world.headers("police")).get_json()["items"]
    assert [set(i) for i in listed] == [STATUS_KEYS]
    staff = client.get(f"/api/v1/referrals/{rid}", headers=world.headers("coordinator")).get_json()
    assert set(staff) == STAFF_KEYS


@pytest.mark.parametrize(
    ("route", "scope"),
    [
        ("read", "cases:status"),
        ("list", "cases:read"),
        ("information", "referrals:read"),
        ("withdraw", "referrals:read"),
    ],
)
def test_a_token_without_the_routes_scope_is_403(client, world, route, scope):
    rid = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police")).get_json()[
        "id"
    ]
    method, suffix, body = ROUTES[route]
    kwargs = {"headers": world.headers("police", scope=scope)}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)("/api/v1/referrals" + suffix.format(id=rid), **kwargs)
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_submission_needs_referrals_submit(client, world):
    response = client.post(
        "/api/v1/referrals", json=referral_body(), headers=world.headers("police", scope="referrals:read")
    )
    assert response.status_code == 403


def test_no_token_is_401(client):
    response = client.get("/api/v1/referrals")
    assert response.status_code == 401 and "invalid_token" in response.headers["WWW-Authenticate"]


def test_review_scope_never_reaches_client_credentials(client, world):
    from tests import oauth_helpers as h

    client_, secret = world._client("police", False)
    response = client.post(
        "/oauth/token",
        headers=h.basic(client_.client_id, secret),
        data={"grant_type": "client_credentials", "scope": "referrals:review"},
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_scope"
