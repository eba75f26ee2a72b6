"""The summary's one-pass statement against an independent count in Python, over a few hundred random
referrals (cases shared by two referrals, none or several types, arrivals with entry points,
reintegration by a move or by closing), on SQLite and PostgreSQL; and on PostgreSQL, its plan."""

from __future__ import annotations

import random
import statistics
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api.cases.models import Case, CaseEvent
from referral_api.referrals.models import Referral
from referral_api.reports import summary

COUNTS = ("referrals", "accepted_cases", "repatriated", "reintegrated")
TYPES = ["sexual", "forced_labour", "forced_marriage", "begging"]
ENTRY_POINTS = ["chinggis_khaan_airport", "zamiin_uud"]


def _case(session, org_id, rng, n, submitted):
    """A case, maybe arrived (with its move) and reintegrated (by a move or by closing); its facts."""
    case_id = uuid.uuid4()
    arrived = rng.random() < 0.6
    arrival = submitted + timedelta(days=rng.randint(20, 60))
    by_move = arrived and rng.random() < 0.4
    by_closure = arrived and not by_move and rng.random() < 0.4
    reintegrated = submitted + timedelta(days=rng.randint(90, 200), hours=rng.randint(0, 23))
    session.execute(sa.insert(Case.__table__).values(
        id=case_id, reference=f"CASE-I-{n:05d}", opened_by_organisation_id=org_id, share_with=[],
        stage="closed" if by_closure else "verification", stage_since=submitted, opened_at=submitted,
        arrived_on=arrival.date() if arrived else None,
        closure_reason="reintegrated" if by_closure else None,
        closed_at=reintegrated if by_closure else None))
    entry = rng.choice(ENTRY_POINTS) if arrived else None
    moves = ([("arrived", arrival, {"entry_point": entry})] if arrived else []) + (
        [("reintegration", reintegrated, {}), ("reintegration", reintegrated + timedelta(days=9), {})]
        if by_move else [])
    for to_stage, when, details in moves:
        session.execute(sa.insert(CaseEvent.__table__).values(
            id=uuid.uuid4(), case_id=case_id, kind="moved", from_stage="verification", to_stage=to_stage,
            occurred_at=when, organisation_id=org_id, client_id="seed", details=details))
    return {"id": case_id, "arrived_on": arrival.date() if arrived else None, "entry_point": entry,
            "reintegrated_at": reintegrated if (by_move or by_closure) else None}


def _seed(session, org_id, n=300):
    rng = random.Random(16)
    made, shared = [], None
    for i in range(n):
        submitted = datetime(rng.choice([2023, 2024, 2025]), rng.randint(1, 12), rng.randint(1, 28),
                             rng.randint(0, 23), tzinfo=UTC)
        status = rng.choice(["accepted", "accepted", "accepted", "submitted", "rejected"])
        case = None
        if status == "accepted":
            # every tenth accepted referral joins the previous one's case (a duplicate referral)
            case = shared if (shared and rng.random() < 0.1) else _case(session, org_id, rng, i, submitted)
            shared = case
        types = rng.sample(TYPES, rng.choice([0, 1, 1, 2]))
        decided = submitted + timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 23))
        row = {"id": uuid.uuid4(), "submitted_at": submitted, "status": status, "types": types,
               "sex": rng.choice(["female", "male"]), "age_band": rng.choice(["12-17", "18-25", "26-35"]),
               "source": rng.choice(["police", "ngo", "embassy"]), "country": rng.choice(["CN", "KR", "MO"]),
               "decided_at": decided if case else None, "case": case}
        session.execute(sa.insert(Referral.__table__).values(
            id=row["id"], reference=f"REF-I-{i:05d}", version=1, concern="trafficking", source=row["source"],
            submitted_by_organisation_id=org_id, submitted_by_client_id="seed", submitted_at=submitted,
            status_changed_at=submitted, sex=row["sex"], age_band=row["age_band"],
            is_minor=row["age_band"] == "12-17", nationality="MN", identified_country=row["country"],
            identified_on=submitted.date(), exploitation_types=types, urgency="routine", consent_given=True,
            share_with=[], minimised=[], status=status, possible_duplicates=0,
            case_id=case["id"] if case else None, decided_at=row["decided_at"]))
        made.append(row)
    session.commit()
    return made


def _keys(row, group_by):
    """The groups a referral falls in (one per type when grouped by type; none without a type)."""
    case = row["case"] or {}
    values = {"year": [row["submitted_at"].year], "identified_country": [row["country"]],
              "exploitation_type": row["types"], "sex": [row["sex"]], "age_band": [row["age_band"]],
              "source": [row["source"]], "entry_point": [case.get("entry_point")]}
    keys = [()]
    for d in group_by:
        keys = [(*k, v) for k in keys for v in values[d]]
    return keys


def _quantiles(values):
    if not values:
        return (0, None, None)
    if len(values) == 1:
        return (1, values[0], values[0])
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return (len(values), statistics.median(values), deciles[8])


def _expected(made, group_by, period=(None, None)):
    cells = defaultdict(lambda: {"referrals": 0, "cases": set(), "arrived": set(), "reint": set(),
                                 "to_acceptance": [], "to_arrival": [], "to_reintegration": []})
    for row in made:
        day = row["submitted_at"].date()
        if (period[0] and day < period[0]) or (period[1] and day > period[1]):
            continue
        for key in [*(_keys(row, group_by) if group_by else []), "total"]:
            cell, case = cells[key], row["case"]
            cell["referrals"] += 1
            if case is None:
                continue
            cell["cases"].add(case["id"])
            cell["to_acceptance"].append((row["decided_at"].date() - day).days)
            if case["arrived_on"]:
                cell["arrived"].add(case["id"])
                cell["to_arrival"].append((case["arrived_on"] - day).days)
            if case["reintegrated_at"]:
                cell["reint"].add(case["id"])
                cell["to_reintegration"].append((case["reintegrated_at"].date() - day).days)
    return {key: {"counts": (c["referrals"], len(c["cases"]), len(c["arrived"]), len(c["reint"])),
                  **{n: _quantiles(c[n]) for n in summary.DURATIONS}} for key, c in cells.items()}


def _got(cell):
    out = {"counts": tuple(cell[m] for m in COUNTS)}
    for name in summary.DURATIONS:
        d = cell["durations"][name]
        out[name] = (d["median_days"], d["p90_days"])
    return out


def _same(expected, got):
    assert got["counts"] == expected["counts"]
    for name in summary.DURATIONS:
        _n, median, p90 = expected[name]
        want = (None, None) if median is None else (round(median, 1), round(p90, 1))
        assert got[name] == pytest.approx(want), name


@pytest.mark.parametrize("group_by", [("year", "identified_country"), ("exploitation_type",),
                                      ("entry_point",), ("sex", "age_band", "source"), ()])
@pytest.mark.parametrize("period", [(None, None), (date(2024, 3, 1), date(2024, 12, 31))])
def test_summary_equals_an_independent_count(session, world, group_by, period):
    made = _seed(session, world.orgs["mgec"].id)
    expected = _expected(made, group_by, period)
    report = summary.summary(session, summary.SummaryQuery(group_by, *period), k=1)
    got = {tuple(r["group"][d] for d in group_by): _got(r) for r in report["rows"]}
    assert set(got) == set(expected) - {"total"}
    for key, cell in got.items():
        _same(expected[key], cell)
    _same(expected["total"], _got(report["total"]))


@pytest.mark.postgres_only
def test_the_plan_has_no_subplan_per_row_and_no_disk_sort(backend, session, world):
    from bench.reports_bench import seed_sql

    seed_sql(session.connection(), world.orgs["mgec"].id, 20_000)
    session.execute(sa.text("ANALYZE referrals, cases, case_events"))
    text = summary.plan(session, summary.SummaryQuery(("year", "identified_country")))
    assert "GroupAggregate" in text and "Group Key: ()" in text, text  # groups and total in one pass
    assert "SubPlan" not in text and "external merge" not in text and "Disk" not in text, text
    assert "temp read" not in text and "temp written" not in text, text
