"""Shelters managed through the API (issue 20): MGEC admins add, rename, resize and close them.

The access table covers the shelter routes by who calls (people of each role, partner systems and
MGEC's own system); capacity never drops below the beds taken, and every change is audited.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Shelter
from tests.case_helpers import open_case

SHELTER_KEYS = {"id", "name", "city", "capacity", "occupancy", "organisation_id", "closed", "closed_at"}
WHO = ("admin", "coordinator", "caseworker", "police_officer", "hotline", "police", "embassy", "ngo")
ADMIN_ONLY = dict.fromkeys(WHO, (403, None)) | {"admin": None}


def _shelter(session, capacity=2, name="Existing shelter"):
    shelter = Shelter(id=uuid.uuid4(), name=name, city="Darkhan", capacity=capacity)
    session.add(shelter)
    session.commit()
    return str(shelter.id)


# route -> (method, path, body, {who: (status, keys) or None for the admin's answer below})
ROUTES = {
    "list": (
        "GET",
        "/api/v1/shelters",
        None,
        dict.fromkeys(WHO, (403, None))
        | {w: (200, {"items"}) for w in ("admin", "coordinator", "caseworker", "hotline")},
    ),
    "create": (
        "POST",
        "/api/v1/shelters",
        {"name": "Shelter of Erdenet", "city": "Erdenet", "capacity": 6},
        ADMIN_ONLY | {"admin": (201, SHELTER_KEYS)},
    ),
    "patch": (
        "PATCH",
        "/api/v1/shelters/{shelter}",
        {"capacity": 9},
        ADMIN_ONLY | {"admin": (200, SHELTER_KEYS)},
    ),
}
CASES = [(r, w) for r in ROUTES for w in WHO]


@pytest.mark.parametrize(("route", "who"), CASES, ids=[f"{r}-{w}" for r, w in CASES])
def test_shelter_route_by_who(client, world, session, route, who):
    method, path, body, expected = ROUTES[route]
    url = path.format(shelter=_shelter(session))
    assert client.open(url, method=method, json=body).status_code == 401
    status, keys = expected[who]
    response = client.open(url, method=method, json=body, headers=world.headers(who))
    assert response.status_code == status, response.get_json()
    if status == 403 and route != "list":
        # no token of a partner, a coordinator or a caseworker holds `admin`: refused at the edge
        assert "insufficient_scope" in response.headers["WWW-Authenticate"]
    if keys is not None:
        assert set(response.get_json()) == keys
    if status >= 400 and method != "GET":
        assert session.scalar(sa.select(sa.func.count()).select_from(Shelter)) == 1


def _admin(world):
    return world.headers("admin")


def test_an_admin_adds_renames_resizes_and_closes_a_shelter_and_each_change_is_audited(
    client, world, session
):
    added = client.post(
        "/api/v1/shelters",
        json={"name": "Shelter A", "city": "Ulaanbaatar", "capacity": 3},
        headers=_admin(world),
    )
    assert added.status_code == 201, added.get_json()
    shelter = added.get_json()
    assert added.headers["Location"] == f"/api/v1/shelters/{shelter['id']}"
    assert (shelter["capacity"], shelter["occupancy"], shelter["closed"]) == (3, 0, False)
    url = f"/api/v1/shelters/{shelter['id']}"
    renamed = client.patch(url, json={"name": "Shelter B", "capacity": 5}, headers=_admin(world))
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "Shelter B"
    closed = client.patch(url, json={"closed": True}, headers=_admin(world))
    assert closed.status_code == 200 and closed.get_json()["closed"] is True
    assert closed.get_json()["closed_at"] is not None
    listed = client.get("/api/v1/shelters", headers=world.headers("coordinator")).get_json()["items"]
    assert [(s["name"], s["capacity"], s["closed"]) for s in listed] == [("Shelter B", 5, True)]
    # a closed shelter takes no new placement
    case_id = open_case(client, world)
    placed = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "shelter", "shelter_id": shelter["id"]},
        headers=world.headers("coordinator"),
    )
    assert placed.status_code == 409 and "shelter_id" in placed.get_json()["errors"]
    reopened = client.patch(url, json={"closed": False}, headers=_admin(world))
    assert reopened.status_code == 200 and reopened.get_json()["closed"] is False
    audited = session.scalars(
        sa.select(AuditEvent.action).where(AuditEvent.resource_id == shelter["id"]).order_by(AuditEvent.seq)
    ).all()
    assert audited == ["cases:shelter:create"] + ["cases:shelter:update"] * 3


def test_capacity_cannot_drop_below_the_beds_taken(client, world, session):
    shelter = _shelter(session, capacity=3)
    for i in range(2):
        case_id = open_case(client, world, external_reference=f"MO-CAP-{i}")
        placed = client.post(
            f"/api/v1/cases/{case_id}/services",
            json={"kind": "shelter", "shelter_id": shelter},
            headers=world.headers("coordinator"),
        )
        assert placed.status_code == 201
    url = f"/api/v1/shelters/{shelter}"
    too_small = client.patch(url, json={"capacity": 1}, headers=_admin(world))
    assert too_small.status_code == 409
    problem = too_small.get_json()
    assert problem["occupancy"] == 2 and "2" in problem["errors"]["capacity"][0]
    assert session.get(Shelter, uuid.UUID(shelter)).capacity == 3
    # closing while people live there is refused as well, naming them
    closing = client.patch(url, json={"closed": True}, headers=_admin(world))
    assert closing.status_code == 409 and closing.get_json()["occupancy"] == 2
    exact = client.patch(url, json={"capacity": 2}, headers=_admin(world))
    assert exact.status_code == 200 and (exact.get_json()["capacity"], exact.get_json()["occupancy"]) == (
        2,
        2,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "city": "Y", "capacity": -1}, "capacity"),
        ({"name": "X", "city": "Y", "capacity": "4"}, "capacity"),
        ({"name": "", "city": "Y", "capacity": 4}, "name"),
        ({"city": "Y", "capacity": 4}, "name"),
        ({"name": "X", "city": "Y", "capacity": 4, "occupancy": 0}, "occupancy"),
        (
            {"name": "X", "city": "Y", "capacity": 4, "organisation_id": str(uuid.UUID(int=7))},
            "organisation_id",
        ),
    ],
)
def test_bad_shelters_are_refused_naming_the_field(client, world, session, body, field):
    response = client.post("/api/v1/shelters", json=body, headers=_admin(world))
    assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()
    assert session.scalar(sa.select(sa.func.count()).select_from(Shelter)) == 0


def test_a_taken_name_and_an_unknown_shelter(client, world, session):
    _shelter(session, name="Shelter of Darkhan")
    other = _shelter(session, name="Shelter of Khovd")
    taken = client.post(
        "/api/v1/shelters",
        json={"name": "Shelter of Darkhan", "city": "D", "capacity": 1},
        headers=_admin(world),
    )
    assert taken.status_code == 409 and "name" in taken.get_json()["errors"]
    renamed = client.patch(
        f"/api/v1/shelters/{other}", json={"name": "Shelter of Darkhan"}, headers=_admin(world)
    )
    assert renamed.status_code == 409
    assert (
        client.patch(
            f"/api/v1/shelters/{uuid.uuid4()}", json={"capacity": 1}, headers=_admin(world)
        ).status_code
        == 404
    )
    assert (
        client.patch("/api/v1/shelters/not-an-id", json={"capacity": 1}, headers=_admin(world)).status_code
        == 404
    )
    empty = client.patch(f"/api/v1/shelters/{other}", json={}, headers=_admin(world))
    assert empty.status_code == 422


def test_adding_a_shelter_with_an_idempotency_key_creates_it_once(client, world, session):
    headers = {**_admin(world), "Idempotency-Key": "add-shelter-of-erdenet"}
    body = {"name": "Shelter of Erdenet", "city": "Erdenet", "capacity": 6}
    first = client.post("/api/v1/shelters", json=body, headers=headers)
    again = client.post("/api/v1/shelters", json=body, headers=headers)
    assert first.status_code == 201 and again.status_code == 201, (first.get_json(), again.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    named = sa.select(sa.func.count()).select_from(Shelter).where(Shelter.name == body["name"])
    assert session.scalar(named) == 1
