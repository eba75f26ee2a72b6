"""Every case route x organisation kind x scope (docs/domain.md, Who sees what).

The scene: a case referred by the police, with the embassy added as a participant and one service;
IOM and the NGO take no part. MGEC is the hotline's system (client credentials). A non-participant
gets 404 on everything of the case: even its existence is personal data.
"""

from __future__ import annotations

import pytest

from tests.case_helpers import STATUS_KEYS, add_participant, open_case

PARTICIPANT_KEYS = STATUS_KEYS | {"role", "allowed_stages", "erased"}
STAFF_KEYS = STATUS_KEYS | {
    "erased",
    "erased_at",
    "internal",
    "on_hold_since",
    "hold_reason",
    "closure_reason",
    "opened_by_organisation_id",
    "share_with",
    "participants",
    "allowed_stages",
}
EVENT_KEYS = {
    "id",
    "kind",
    "from_stage",
    "to_stage",
    "occurred_at",
    "recorded_at",
    "organisation_id",
    "client_id",
    "user_id",
    "details",
    "note",
}
SERVICE_KEYS = {
    "id",
    "case_id",
    "kind",
    "provider_id",
    "shelter_id",
    "status",
    "starts_on",
    "ends_on",
    "note",
    "updated_at",
}
PERSON_KEYS = {
    "family_name",
    "given_name",
    "names_cyrillic",
    "aliases",
    "sex",
    "date_of_birth",
    "estimated_age",
    "nationality",
    "passport_number",
    "national_id",
    "phone",
    "home_province",
    "languages",
    "current_location",
}
KINDS = ("hotline", "police", "embassy", "iom", "ngo")
PARTICIPANTS = ("police", "embassy")
EXTERNAL_REFERENCE = "MO-PSP-2026-0412"


def _by_kind(mgec, participant, other=404, **special):
    out = {"hotline": mgec, "police": participant, "embassy": participant, "iom": other, "ngo": other}
    out.update(special)
    return out


# route name -> (method, path, scope, body, {who: (status, keys of the answer or None)})
ROUTES = {
    "case": (
        "GET",
        "/api/v1/cases/{case}",
        "cases:read",
        None,
        _by_kind((200, STAFF_KEYS | {"person"}), (200, PARTICIPANT_KEYS | {"person"}), (404, None)),
    ),
    "status": (
        "GET",
        "/api/v1/cases/{case}/status",
        "cases:status",
        None,
        _by_kind((200, STATUS_KEYS), (200, STATUS_KEYS), (404, None)),
    ),
    "status_by_reference": (
        "GET",
        "/api/v1/cases/{reference}/status",
        "cases:status",
        None,
        _by_kind((200, STATUS_KEYS), (200, STATUS_KEYS), (404, None)),
    ),
    "status_by_external_reference": (
        "GET",
        f"/api/v1/cases/status?external_reference={EXTERNAL_REFERENCE}",
        "cases:status",
        None,
        _by_kind((404, None), (404, None), (404, None), police=(200, STATUS_KEYS)),
    ),
    "events": (
        "GET",
        "/api/v1/cases/{case}/events",
        "cases:read",
        None,
        _by_kind((200, {"items"}), (200, {"items"}), (404, None)),
    ),
    "list": (
        "GET",
        "/api/v1/cases",
        "cases:read",
        None,
        _by_kind(
            (200, {"items", "next_cursor"}), (200, {"items", "next_cursor"}), (200, {"items", "next_cursor"})
        ),
    ),
    "participants": (
        "GET",
        "/api/v1/cases/{case}/participants",
        "cases:read",
        None,
        _by_kind((200, {"items"}), (403, None), (404, None)),
    ),
    "services": (
        "GET",
        "/api/v1/cases/{case}/services",
        "cases:read",
        None,
        _by_kind((200, {"items"}), (403, None), (404, None)),
    ),
    "shelters": (
        "GET",
        "/api/v1/shelters",
        "cases:read",
        None,
        _by_kind((200, {"items"}), (403, None), (403, None)),
    ),
    "transition": (
        "POST",
        "/api/v1/cases/{case}/transitions",
        "cases:update",
        {"to": "closed", "details": {"closure_reason": "other"}},
        _by_kind((200, STAFF_KEYS), (403, None), (404, None)),
    ),
    "hold": (
        "POST",
        "/api/v1/cases/{case}/hold",
        "cases:update",
        {"reason": "In hospital."},
        _by_kind((200, STAFF_KEYS), (403, None), (404, None)),
    ),
    "resume": (
        "POST",
        "/api/v1/cases/{case}/resume",
        "cases:update",
        {},
        _by_kind((409, None), (403, None), (404, None)),
    ),
    "add_participant": (
        "POST",
        "/api/v1/cases/{case}/participants",
        "cases:update",
        {"organisation_id": "{ngo}", "role": "service_provider"},
        _by_kind(
            (201, {"organisation_id", "role", "external_reference", "added_at"}), (403, None), (404, None)
        ),
    ),
    "remove_participant": (
        "DELETE",
        "/api/v1/cases/{case}/participants/{embassy}",
        "cases:update",
        None,
        _by_kind((204, None), (403, None), (404, None)),
    ),
    "add_service": (
        "POST",
        "/api/v1/cases/{case}/services",
        "cases:update",
        {"kind": "medical"},
        _by_kind((201, SERVICE_KEYS), (403, None), (404, None)),
    ),
    "patch_service": (
        "PATCH",
        "/api/v1/services/{service}",
        "cases:update",
        {"status": "in_progress"},
        _by_kind((200, SERVICE_KEYS), (404, None), (404, None)),
    ),
}
CASES = [(route, who) for route in ROUTES for who in KINDS]


@pytest.fixture
def scene(client, world):
    case_id = open_case(client, world, external_reference=EXTERNAL_REFERENCE)
    add_participant(client, world, case_id, "embassy", "embassy")
    service = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "psychosocial"},
        headers=world.headers("coordinator"),
    )
    assert service.status_code == 201
    reference = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("coordinator")).get_json()[
        "reference"
    ]
    return {
        "case": case_id,
        "reference": reference,
        "service": service.get_json()["id"],
        "embassy": str(world.orgs["embassy"].id),
        "ngo": str(world.orgs["ngo"].id),
    }


def _fill(value, scene):
    if isinstance(value, str):
        return value.format(**scene)
    if isinstance(value, dict):
        return {k: _fill(v, scene) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("route", "who"), CASES, ids=[f"{r}-{w}" for r, w in CASES])
def test_case_route_by_kind_and_scope(client, world, scene, route, who):
    method, path, scope, body, expected = ROUTES[route]
    url, payload = _fill(path, scene), _fill(body, scene)
    # a token without the route's scope is refused before anything is looked up
    wrong = "reports:read"
    refused = client.open(url, method=method, json=payload, headers=world.headers(who, wrong))
    assert refused.status_code == 403 and "insufficient_scope" in refused.headers["WWW-Authenticate"]
    assert client.open(url, method=method, json=payload).status_code == 401

    status, keys = expected[who]
    response = client.open(url, method=method, json=payload, headers=world.headers(who, scope))
    assert response.status_code == status, response.get_json()
    if keys is not None:
        body = response.get_json()
        assert set(body) == keys
        if route == "events":
            # the client and the person who recorded an entry are MGEC staff's to see only
            expected_event_keys = EVENT_KEYS if who == "hotline" else EVENT_KEYS - {"client_id", "user_id"}
            assert all(set(e) == expected_event_keys for e in body["items"])
            notes = {e["note"] for e in body["items"]}
            assert notes == {None} or who == "hotline"
        if route == "case":
            # consent covers embassies and IOM, not the police: the embassy sees name, birth, documents
            person = body["person"]
            expected_person = {
                "hotline": PERSON_KEYS,
                "embassy": {
                    "family_name",
                    "given_name",
                    "names_cyrillic",
                    "date_of_birth",
                    "nationality",
                    "passport_number",
                    "national_id",
                },
            }.get(who)
            assert (set(person) if person else None) == expected_person
        if route == "list":
            mine = {c["id"] for c in body["items"]}
            assert (scene["case"] in mine) == (who in ("hotline", *PARTICIPANTS))
            for item in body["items"]:
                assert set(item) == (STAFF_KEYS - {"participants"} if who == "hotline" else PARTICIPANT_KEYS)
