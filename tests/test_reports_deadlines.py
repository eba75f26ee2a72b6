"""`GET /api/v1/reports/deadlines`: referrals decided within their deadline by month, median days in
each stage, on a seeded population with a hand count; small cells suppressed."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api.cases.models import Case, CaseEvent
from referral_api.referrals.models import Referral

_numbers = itertools.count(1)


def _referral(
    session, org_id, *, urgency: str, submitted: datetime, decided_after: timedelta, status="accepted"
):
    n = next(_numbers)
    session.execute(
        sa.insert(Referral.__table__).values(
            id=uuid.uuid4(),
            reference=f"REF-D-{n:06d}",
            version=1,
            concern="trafficking",
            source="police",
            submitted_by_organisation_id=org_id,
            submitted_by_client_id="seed",
            submitted_at=submitted,
            status_changed_at=submitted + decided_after,
            sex="female",
            nationality="MN",
            identified_country="MO",
            identified_on=submitted.date(),
            exploitation_types=["sexual"],
            urgency=urgency,
            consent_given=True,
            share_with=[],
            minimised=[],
            status=status,
            possible_duplicates=0,
            decided_at=submitted + decided_after,
        )
    )


def _case(session, org_id, start: datetime, stays: list[tuple[str, timedelta]]):
    """A case opened at `start` in the first stage of `stays`, moved on after each stay's length."""
    case_id = uuid.uuid4()
    session.execute(
        sa.insert(Case.__table__).values(
            id=case_id,
            reference=f"CASE-D-{next(_numbers):06d}",
            opened_by_organisation_id=org_id,
            share_with=[],
            stage="verification",
            stage_since=start,
            opened_at=start,
        )
    )
    at, previous = start, None
    for stage, length in [*stays, ("closed", timedelta(0))]:
        session.execute(
            sa.insert(CaseEvent.__table__).values(
                id=uuid.uuid4(),
                case_id=case_id,
                kind="opened" if previous is None else "moved",
                from_stage=previous,
                to_stage=stage,
                occurred_at=at,
                organisation_id=org_id,
                client_id="seed",
                details={},
            )
        )
        at, previous = at + length, stage


@pytest.fixture
def population(session, world):
    org = world.orgs["mgec"].id
    march, april = datetime(2026, 3, 2, 8, tzinfo=UTC), datetime(2026, 4, 2, 8, tzinfo=UTC)
    # March: 15 routine in time (2 days; 24 h + 72 h allowed), 12 late (5 days)
    for i in range(27):
        _referral(
            session, org, urgency="routine", submitted=march, decided_after=timedelta(days=2 if i < 15 else 5)
        )
    # April: 14 in time; 3 emergency decided after 4 days (1 h + 72 h allowed): late, and few
    for i in range(17):
        _referral(
            session,
            org,
            urgency="emergency" if i >= 14 else "urgent",
            submitted=april,
            decided_after=timedelta(days=4 if i >= 14 else 2, hours=-1 if i < 14 else 0),
        )
    # a withdrawn referral is no decision
    _referral(
        session, org, urgency="routine", submitted=march, decided_after=timedelta(days=1), status="withdrawn"
    )
    # 12 verification stays of 1..12 days (median 6.5); 3 of them then 2 days in travel_documents
    for i in range(12):
        stays = [("verification", timedelta(days=i + 1))]
        if i < 3:
            stays.append(("travel_documents", timedelta(days=2)))
        _case(session, org, march + timedelta(hours=i), stays)
    session.commit()


def get(client, world, **params):
    answer = client.get(
        "/api/v1/reports/deadlines", query_string=params, headers=world.headers("coordinator")
    )
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_decisions_in_time_by_month_with_suppression(client, world, population):
    report = get(client, world)
    assert report["decisions"] == [
        {
            "month": "2026-03",
            "decided": 27,
            "in_time": 15,
            "late": 12,
            "share_in_time": 0.556,
            "suppressed": [],
        },
        # 3 late is a small cell; in time is suppressed too, or 17 - 14 would show it
        {
            "month": "2026-04",
            "decided": 17,
            "in_time": None,
            "late": None,
            "share_in_time": None,
            "suppressed": ["in_time", "late"],
        },
    ]
    only_march = get(client, world, **{"from": "2026-03-01", "to": "2026-03-31"})
    assert [m["month"] for m in only_march["decisions"]] == ["2026-03"]


def test_median_days_in_each_stage(client, world, population):
    stages = {s["stage"]: s for s in get(client, world)["stage_days"]}
    assert stages["verification"] == {"stage": "verification", "median_days": 6.5, "suppressed": False}
    assert stages["travel_documents"] == {
        "stage": "travel_documents",
        "median_days": None,
        "suppressed": True,
    }
    assert stages["in_transit"] == {"stage": "in_transit", "median_days": None, "suppressed": False}
    assert "closed" not in stages
    assert all(s["median_days"] is None for s in get(client, world, **{"from": "2027-01-01"})["stage_days"])


def test_scope_and_parameters(client, world):
    assert client.get("/api/v1/reports/deadlines", headers=world.headers("caseworker")).status_code == 403
    assert client.get("/api/v1/reports/deadlines").status_code == 401
    backwards = client.get(
        "/api/v1/reports/deadlines?from=2026-02-01&to=2026-01-01", headers=world.headers("coordinator")
    )
    assert backwards.status_code == 422 and "from" in backwards.get_json()["errors"]
    unknown = client.get("/api/v1/reports/deadlines?group_by=sex", headers=world.headers("coordinator"))
    assert unknown.status_code == 422


@pytest.mark.parametrize("name", ["from", "to"])
def test_a_day_out_of_range_is_a_422_naming_the_field(client, world, name):
    for day in ("9999-12-31", "1899-12-31"):
        answer = client.get(
            "/api/v1/reports/deadlines", query_string={name: day}, headers=world.headers("coordinator")
        )
        assert answer.status_code == 422, (day, answer.get_data(as_text=True)[:300])
        assert answer.mimetype == "application/problem+json"
        assert name in answer.get_json()["errors"], answer.get_json()
