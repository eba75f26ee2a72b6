"""The summary report on a seeded population: exact counts, and no small cell recoverable."""

from __future__ import annotations

import itertools

import pytest

from referral_api.reports.suppression import suppress
from tests.report_seed import Group, seed

K = 11
COUNTS = ("referrals", "accepted_cases", "repatriated", "reintegrated")

# Hand count: 107 referrals; 35 accepted cases (20 + 12 + 3); 15 repatriated; 12 reintegrated.
POPULATION = [
    Group(
        2025,
        "CN",
        30,
        accepted=20,
        arrived=15,
        reintegrated_by_move=7,
        reintegrated_by_closure=5,
        types=["forced_labour", "sexual"],
    ),
    Group(2025, "KR", 14, accepted=12),
    Group(2025, "MO", 5, accepted=3),
    Group(2024, "CN", 25),
    Group(2024, "KR", 13),
    Group(2024, "MO", 20),
]


@pytest.fixture
def population(session, world):
    return seed(session, world.orgs["mgec"].id, POPULATION)


def get(client, world, **params):
    answer = client.get("/api/v1/reports/summary", query_string=params, headers=world.headers("coordinator"))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def by_group(report):
    return {tuple(row["group"].values()): row for row in report["rows"]}


def assert_nothing_small(report, marginals=()):
    """No returned count, nor any total (or marginal) minus the returned cells it covers, is in 1..K-1."""
    rows = report["rows"]
    for metric in COUNTS:
        for row in [*rows, report["total"]]:
            value = row[metric]
            assert value is None or value == 0 or value >= K, (metric, row)
            assert (value is None) == (metric in row["suppressed"])
        total = report["total"][metric]
        if total is not None:
            rest = total - sum(r[metric] for r in rows if r[metric] is not None)
            assert rest == 0 or rest >= K, (metric, rest)
        for dimension, marginal in marginals:
            for mrow in marginal["rows"]:
                value = mrow[metric]
                if value is None:
                    continue
                covered = [r for r in rows if r["group"][dimension] == mrow["group"][dimension]]
                rest = value - sum(r[metric] for r in covered if r[metric] is not None)
                assert rest == 0 or rest >= K, (metric, dimension, mrow["group"], rest)


def test_exact_counts_against_a_hand_count(client, world, population):
    report = get(client, world, group_by="year,identified_country")
    assert report["min_cell"] == K and report["group_by"] == ["year", "identified_country"]
    total = report["total"]
    assert [total[m] for m in COUNTS] == [107, 35, 15, 12]
    cells = by_group(report)
    assert set(cells) == {(y, c) for y in (2024, 2025) for c in ("CN", "KR", "MO")}
    cn = cells[(2025, "CN")]
    assert [cn[m] for m in COUNTS] == [30, 20, 15, 12] and cn["suppressed"] == []
    assert cells[(2024, "CN")]["referrals"] == 25
    # 2025 MO (5) is under the threshold; 2025 KR hides it in its year, 2024 MO in its country,
    # 2024 KR then in KR's: four referral cells suppressed, and 3 accepted in MO hidden by KR's 12.
    assert cells[(2025, "MO")]["referrals"] is None and "referrals" in cells[(2025, "MO")]["suppressed"]
    assert {k for k, row in cells.items() if row["referrals"] is None} == {
        (2025, "MO"),
        (2025, "KR"),
        (2024, "MO"),
        (2024, "KR"),
    }
    assert cells[(2025, "MO")]["accepted_cases"] is None and cells[(2025, "KR")]["accepted_cases"] is None
    marginals = [
        ("year", get(client, world, group_by="year")),
        ("identified_country", get(client, world, group_by="identified_country")),
    ]
    assert_nothing_small(report, marginals)
    for _dimension, marginal in marginals:
        assert_nothing_small(marginal)


def test_durations_are_median_and_p90_and_suppressed_under_the_threshold(client, world, population):
    cells = by_group(get(client, world, group_by="year,identified_country"))
    durations = cells[(2025, "CN")]["durations"]
    # accepted after 0..19 days; arrived after 30..44; reintegrated after 100..111
    assert durations["to_acceptance"] == {"median_days": 9.5, "p90_days": 17.1, "suppressed": False}
    assert durations["to_arrival"] == {"median_days": 37.0, "p90_days": 42.6, "suppressed": False}
    assert durations["to_reintegration"] == {"median_days": 105.5, "p90_days": 109.9, "suppressed": False}
    # three accepted in 2025 MO: too few to describe
    assert cells[(2025, "MO")]["durations"]["to_acceptance"] == {
        "median_days": None,
        "p90_days": None,
        "suppressed": True,
    }
    assert cells[(2024, "CN")]["durations"]["to_acceptance"]["suppressed"] is False  # none to hide


def test_a_person_counts_in_each_of_their_exploitation_types(client, world, population):
    report = get(client, world, group_by="exploitation_type")
    cells = by_group(report)
    assert cells[("forced_labour",)]["referrals"] == 107 and cells[("sexual",)]["referrals"] == 30
    assert report["total"]["referrals"] == 107  # the types sum to more than the people


def test_entry_point_and_period(client, world, population):
    cells = by_group(get(client, world, group_by="entry_point", **{"from": "2025-01-01", "to": "2025-12-31"}))
    # 15 arrived in 2025 CN: 8 by the airport, 7 by Zamiin-Uud (hidden, and so the airport's too)
    assert cells[("chinggis_khaan_airport",)]["repatriated"] is None
    assert cells[("zamiin_uud",)]["repatriated"] is None
    report = get(client, world, **{"from": "2025-01-01", "to": "2025-12-31"})
    assert report["total"]["referrals"] == 49 and report["rows"] == []
    assert get(client, world, to="2024-12-31")["total"]["referrals"] == 58


def test_minors_are_never_shown_in_a_small_cell(client, world, session):
    seed(
        session,
        world.orgs["mgec"].id,
        [
            Group(2025, "CN", 40),
            Group(2025, "CN", 4, age_band="12-17"),
            Group(2025, "CN", 12, age_band="0-11"),
        ],
    )
    report = get(client, world, group_by="age_band")
    cells = by_group(report)
    assert cells[("12-17",)]["referrals"] is None and cells[("0-11",)]["referrals"] is None
    assert_nothing_small(report)


def test_scope_and_parameters(client, world):
    assert client.get("/api/v1/reports/summary", headers=world.headers("caseworker")).status_code == 403
    assert client.get("/api/v1/reports/summary").status_code == 401
    bad = client.get("/api/v1/reports/summary?group_by=name", headers=world.headers("coordinator"))
    assert bad.status_code == 422
    twice = client.get("/api/v1/reports/summary?group_by=sex,sex", headers=world.headers("coordinator"))
    assert twice.status_code == 422
    backwards = client.get(
        "/api/v1/reports/summary?from=2025-02-01&to=2025-01-01", headers=world.headers("coordinator")
    )
    assert backwards.status_code == 422


@pytest.mark.parametrize("seed_", range(30))
def test_suppression_leaves_no_line_recoverable(seed_):
    """Random tables: in every line of every dimension subset, hidden cells are none, or 2+ with sum >= K."""
    import random

    rng = random.Random(seed_)
    dims = rng.choice([1, 2, 3])
    values = [list(range(rng.randint(1, 4))) for _ in range(dims)]
    cells = {key: rng.choice([0, 0, 1, 3, 5, 9, 11, 12, 20, 40]) for key in itertools.product(*values)}
    total = sum(cells.values())
    hidden, total_hidden = suppress(cells, k=K, total=total)
    assert all(cells[h] > 0 for h in hidden)
    assert {k for k, v in cells.items() if 0 < v < K} <= hidden
    for n in range(dims):
        for fixed in itertools.combinations(range(dims), n):
            groups = {}
            for key in cells:
                groups.setdefault(tuple(key[i] for i in fixed), []).append(key)
            for members in groups.values():
                gone = [m for m in members if m in hidden]
                shown = [m for m in members if m not in hidden and cells[m] > 0]
                if gone and shown:
                    assert len(gone) > 1 and sum(cells[m] for m in gone) >= K
    if total_hidden:
        assert 0 < total < K or not [m for m in cells if m not in hidden and cells[m] > 0]


def _overlap_recovered(cells: list, marginal) -> int | None:
    """The overlap (cells' sum minus their marginal) when every cell and the marginal are released."""
    if marginal is None or None in cells:
        return None
    return sum(cells) - marginal


def test_people_with_two_exploitation_types_are_not_a_small_derivable_count(client, world, session):
    """20 labour only, 20 sexual only, 3 both: the cells (23, 23) and the total (43) were all >= K, and
    their difference told that 3 people had both types."""
    seed(session, world.orgs["mgec"].id, [
        Group(2025, "CN", 20, types=["forced_labour"]),
        Group(2025, "CN", 20, types=["sexual"]),
        Group(2025, "CN", 3, types=["forced_labour", "sexual"]),
    ])
    by_type = get(client, world, group_by="exploitation_type")
    both = _overlap_recovered([r["referrals"] for r in by_type["rows"]], by_type["total"]["referrals"])
    assert both is None, both
    assert by_type["total"]["referrals"] == 43  # the total is kept: the type cells hide the overlap
    assert_nothing_small(by_type)


def test_the_overlap_of_exploitation_types_is_not_a_small_count(client, world, session):
    """20 labour only, 20 sexual only, 3 both: each released count was >= K, yet the 3 were the types'
    sum minus the total; and per country, the types' sum minus the country's count."""
    seed(session, world.orgs["mgec"].id, [
        Group(2025, "CN", 20, types=["forced_labour"]),
        Group(2025, "CN", 20, types=["sexual"]),
        Group(2025, "CN", 3, types=["forced_labour", "sexual"]),
        Group(2025, "KR", 15, types=["forced_labour"]),
        Group(2025, "KR", 12, types=["sexual"]),
        Group(2025, "KR", 11, types=["forced_labour", "sexual"]),
    ])
    by_type = get(client, world, group_by="exploitation_type")
    for metric in COUNTS:
        both = _overlap_recovered([r[metric] for r in by_type["rows"]], by_type["total"][metric])
        assert both is None or both == 0 or both >= K, (metric, both)
    by_country = by_group(get(client, world, group_by="identified_country"))
    by_country_type = get(client, world, group_by="identified_country,exploitation_type")
    for country in ("CN", "KR"):
        rows = [r for r in by_country_type["rows"] if r["group"]["identified_country"] == country]
        line = [r["referrals"] for r in rows]
        both = _overlap_recovered(line, by_country[(country,)]["referrals"])
        assert both is None or both >= K, (country, both)
    assert_nothing_small(by_country_type)


@pytest.mark.parametrize("seed_", range(40))
def test_no_derivable_overlap_of_a_multi_valued_dimension_is_small(seed_):
    """Random units with one to three types and a country: along the types every group with all its
    non-zero cells released has an overlap (its cells' sum minus what the grouping without types shows)
    of 0 or at least K; the rules of a partition still hold for the rest."""
    import random

    rng = random.Random(seed_)
    countries = range(rng.randint(1, 3))
    units = [
        (rng.choice(countries), rng.sample(range(3), rng.choice([1, 1, 1, 2, 3])))
        for _ in range(rng.randint(1, 80))
    ]
    untyped = [rng.choice(countries) for _ in range(rng.choice([0, 0, 2]))]
    cells = {(c, t): 0 for c in countries for t in range(3)}
    lines = {(c,): untyped.count(c) for c in countries}
    for country, types in units:
        lines[(country,)] += 1
        for t in types:
            cells[(country, t)] += 1
    total = sum(lines.values())
    hidden, total_hidden = suppress(cells, k=K, total=total, multi=1, lines=lines)
    assert {key for key, v in cells.items() if 0 < v < K} <= hidden
    groups = [(lambda key: True, total)] + [
        ((lambda key, c=c: key[0] == c), lines[(c,)]) for c in countries
    ]
    for inside, marginal in groups:
        members = [key for key in cells if inside(key)]
        if any(key in hidden for key in members) or (marginal is total and total_hidden):
            continue
        both = sum(cells[key] for key in members) - marginal
        assert both == 0 or abs(both) >= K, (members, both)


def test_a_type_repeated_in_a_stored_referral_counts_once(client, world, session):
    """Rows stored before the schema refused repeats: two referrals of ["forced_labour"] * 8 were
    published as a cell of 16, past suppression."""
    seed(session, world.orgs["mgec"].id, [
        Group(2025, "CN", 2, types=["forced_labour"] * 8),
        Group(2025, "KR", 30, types=["sexual", "sexual"]),
    ])
    report = get(client, world, group_by="exploitation_type")
    assert by_group(report)[("forced_labour",)]["referrals"] is None, by_group(report)[("forced_labour",)]
    assert report["total"]["referrals"] == 32
    assert_nothing_small(report)


def test_a_type_repeated_in_a_stored_referral_counts_once_in_cells_and_durations(client, world, session):
    """Twelve referrals of ["forced_labour"] * 8 were a cell of 96, and five accepted ones a duration
    over forty (shown) instead of five (under the threshold)."""
    seed(session, world.orgs["mgec"].id, [
        Group(2025, "MO", 12, accepted=5, types=["forced_labour"] * 8),
        Group(2025, "MO", 20, types=["sexual"]),
    ])
    for group_by in ("exploitation_type", "identified_country,exploitation_type"):
        report = get(client, world, group_by=group_by)
        cells = {row["group"]["exploitation_type"]: row for row in report["rows"]}
        assert cells["forced_labour"]["referrals"] == 12 and cells["sexual"]["referrals"] == 20, cells
        assert cells["forced_labour"]["durations"]["to_acceptance"]["suppressed"] is True
        assert report["total"]["referrals"] == 32
        assert_nothing_small(report)
