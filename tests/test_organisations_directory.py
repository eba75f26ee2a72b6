"""GET /api/v1/organisations: the directory, by caller kind, searchable by name, keyset paged."""

from __future__ import annotations

from referral_api.organisations.models import Organisation, OrganisationKind
from tests.case_helpers import add_participant, open_case

STAFF_FIELDS = {"id", "name", "kind", "country", "status"}


def _scene(client, session, world):
    """police refers case A (IOM joins it); embassy refers case B; ngo takes part in none."""
    case_a = open_case(client, world, who="police")
    add_participant(client, world, case_a, "iom", "iom")
    open_case(client, world, who="embassy")
    suspended = Organisation(name="Closed shelter ZZ", kind=OrganisationKind.SERVICE_PROVIDER, country="MN")
    suspended.suspend()
    session.add(suspended)
    session.commit()
    return suspended


def _all(client, world, who, **params):
    """Every item of the directory as `who` sees it, page by page (2 a page)."""
    items, cursor = [], None
    while True:
        query = {"limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/organisations", query_string=query, headers=world.headers(who))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body["items"]) <= 2
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_access_table_across_caller_kinds(client, session, world):
    suspended = _scene(client, session, world)
    names = {key: org.name for key, org in world.orgs.items()}
    expected = {
        "police": {names["mgec"], names["police"], names["iom"]},
        "police_officer": {names["mgec"], names["police"], names["iom"]},
        "iom": {names["mgec"], names["police"], names["iom"]},
        "embassy": {names["mgec"], names["embassy"]},
        "ngo": {names["mgec"]},
    }
    for who, visible in expected.items():
        items = _all(client, world, who)
        assert {i["name"] for i in items} == visible, who
        assert all(set(i) == {"id", "name"} for i in items), who  # names only, no kind/country/status
    for who in ("coordinator", "caseworker", "hotline"):
        items = _all(client, world, who)
        by_name = {i["name"]: i for i in items}
        assert set(names.values()) | {suspended.name} <= set(by_name), who
        assert all(set(i) == STAFF_FIELDS for i in items), who
        assert by_name[suspended.name]["status"] == "suspended"
        assert by_name[names["embassy"]] == {"id": str(world.orgs["embassy"].id), "name": names["embassy"],
                                              "kind": "embassy", "country": "KR", "status": "active"}
        assert [i["name"] for i in items] == sorted(i["name"] for i in items)  # by name, no repeats


def test_needs_cases_read(client, world):
    token = world.headers("police", scope="referrals:submit")
    response = client.get("/api/v1/organisations", headers=token)
    assert response.status_code == 403
    assert client.get("/api/v1/organisations").status_code == 401


def test_search_by_name_any_case_and_wildcards_are_literal(client, session, world):
    _scene(client, session, world)
    found = _all(client, world, "coordinator", q="eMBassy")
    assert [i["name"] for i in found] == [world.orgs["embassy"].name]
    assert _all(client, world, "coordinator", q="%") == []
    assert _all(client, world, "coordinator", q="_") == []
    # a partner's search stays inside what it may see
    assert _all(client, world, "ngo", q="embassy") == []
    assert [i["name"] for i in _all(client, world, "police", q="iom")] == [world.orgs["iom"].name]


def test_bad_query_arguments_are_422_naming_the_field(client, world):
    headers = world.headers("coordinator")
    for params, field in (({"limit": 0}, "limit"), ({"cursor": "not-a-cursor"}, "cursor"),
                          ({"q": "x" * 201}, "q"), ({"colour": "red"}, "colour")):
        response = client.get("/api/v1/organisations", query_string=params, headers=headers)
        assert response.status_code == 422, params
        assert field in response.get_json()["errors"], params
