"""The CTDC export: k-anonymous over its quasi-identifiers, and nothing personal in it."""

from __future__ import annotations

import csv
import io
from collections import Counter

from referral_api.reports.export import COLUMNS, QUASI_IDENTIFIERS, anonymise
from tests.report_seed import Group, seed

K = 11
BANDS = {"0-11", "12-17", "18-25", "26-35", "36-49", "50+", ""}
ALLOWED = {
    "Datasource": lambda v: v == "Case Management",
    "yearOfRegistration": lambda v: v.isdigit() and len(v) == 4,
    "gender": lambda v: v in {"Female", "Male", ""},
    "ageBroad": lambda v: v in BANDS,
    "majorityStatus": lambda v: v in {"Adult", "Minor", ""},
    "citizenship": lambda v: v == "" or (len(v) == 2 and v.isalpha() and v.isupper()),
    "CountryOfExploitation": lambda v: v == "" or (len(v) == 2 and v.isalpha() and v.isupper()),
    **{flag: (lambda v: v in {"0", "1"}) for flag in COLUMNS if flag.startswith("is")},
}


def rows_of(answer):
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "text/csv"
    return list(csv.DictReader(io.StringIO(answer.get_data(as_text=True))))


def assert_k_anonymous(rows):
    sizes = Counter(tuple(r[q] for q in QUASI_IDENTIFIERS) for r in rows)
    assert all(n >= K for n in sizes.values()), sizes


def test_the_export_of_a_seeded_population_is_k_anonymous(client, world, session):
    seed(
        session,
        world.orgs["mgec"].id,
        [
            Group(2025, "CN", 20, accepted=20, types=["sexual"]),
            Group(2025, "CN", 6, accepted=6, age_band="18-25"),  # too few: the age band goes
            Group(2025, "CN", 6, accepted=6, age_band="36-49"),  # with the 6 above: 12 adults of 2025 CN
            Group(2025, "KR", 3, accepted=3, age_band="12-17"),  # 3 minors in KR: country goes, then more
            Group(2024, "MO", 12, accepted=12, sex="male", types=["forced_labour", "sexual"]),
            Group(2024, "MO", 4),  # not accepted: not a person of the dataset
        ],
    )
    rows = rows_of(client.get("/api/v1/reports/export.csv", headers=world.headers("coordinator")))
    assert list(rows[0]) == list(COLUMNS)
    assert_k_anonymous(rows)
    assert len(rows) == 20 + 12 + 12  # the 3 minors cannot be hidden in any class: dropped
    by_key = Counter((r["yearOfRegistration"], r["CountryOfExploitation"], r["ageBroad"]) for r in rows)
    assert by_key[("2025", "CN", "26-35")] == 20 and by_key[("2025", "CN", "")] == 12
    mo = [r for r in rows if r["CountryOfExploitation"] == "MO"]
    assert len(mo) == 12 and all(r["isSexAndLabour"] == "1" and r["gender"] == "Male" for r in mo)
    assert all(r["majorityStatus"] == "Adult" and r["citizenship"] == "MN" for r in rows)


def test_the_export_holds_nothing_personal(client, world):
    from tests.case_helpers import open_case

    for n in range(K):
        open_case(client, world, external_reference=f"EXP-{n}")
    answer = client.get("/api/v1/reports/export.csv", headers=world.headers("coordinator"))
    text = answer.get_data(as_text=True)
    rows = rows_of(answer)
    assert len(rows) == K
    national_id = "\u0423\u041199041212"  # as in referral_data
    for value in ("Dorj", "Batbayar", "Доржийн", "E1234567", national_id, "Macau", "EXP-", "REF-", "CASE-"):
        assert value not in text, value
    for row in rows:
        assert set(row) == set(COLUMNS)
        for column, value in row.items():
            assert ALLOWED[column](value), (column, value)  # codes only: no free text can pass


def test_scope_and_parameters(client, world):
    assert client.get("/api/v1/reports/export.csv", headers=world.headers("caseworker")).status_code == 403
    bad = client.get(
        "/api/v1/reports/export.csv?from=2025-02-01&to=2025-01-01", headers=world.headers("coordinator")
    )
    assert bad.status_code == 422


def test_anonymise_generalises_before_dropping():
    base = dict.fromkeys(COLUMNS, "")
    rows = [
        {
            **base,
            "yearOfRegistration": "2025",
            "ageBroad": band,
            "majorityStatus": "Adult",
            "CountryOfExploitation": country,
        }
        for band, country, n in (
            ("18-25", "CN", 11),
            ("26-35", "CN", 5),
            ("36-49", "CN", 6),
            ("26-35", "KR", 2),
        )
        for _ in range(n)
    ]
    out = anonymise(rows, K)
    assert_k_anonymous(out)
    # 11 kept as they are; 5 + 6 join with their age band blanked; the 2 in KR never reach 11: dropped
    assert len(out) == 22 and sum(1 for r in out if r["ageBroad"] == "") == 11


def test_the_export_covers_whole_calendar_years_only(client, world, session):
    """Its only time quasi-identifier is the year of registration: a period cutting a year (1 March, then
    1 to 2 March) would let two exports single out the people of the days between them."""
    seed(session, world.orgs["mgec"].id, [Group(2025, "CN", 12, accepted=12)])
    headers = world.headers("coordinator")
    for params, fields in (
        ({"from": "2025-03-01", "to": "2025-03-01"}, ["from", "to"]),
        ({"from": "2025-01-01", "to": "2025-03-02"}, ["to"]),
        ({"from": "2025-12-31"}, ["from"]),
        ({"to": "2025-01-01"}, ["to"]),
        ({"from": "2026-01-01", "to": "2025-12-31"}, ["from"]),  # backwards
    ):
        answer = client.get("/api/v1/reports/export.csv", query_string=params, headers=headers)
        assert answer.status_code == 422, (params, answer.get_data(as_text=True)[:300])
        assert answer.mimetype == "application/problem+json"
        assert sorted(answer.get_json()["errors"]) == fields, answer.get_json()
    refused = client.get("/api/v1/reports/export.csv?from=2025-03-01", headers=headers).get_json()
    message = refused["errors"]["from"][0]
    assert "whole calendar years" in message and "a 1 January, such as 2025-01-01" in message
    for params in ({"from": "2025-01-01", "to": "2025-12-31"}, {"from": "2024-01-01"}, {"to": "2025-12-31"}):
        rows = rows_of(client.get("/api/v1/reports/export.csv", query_string=params, headers=headers))
        assert len(rows) == 12, params
    assert rows_of(client.get("/api/v1/reports/export.csv?to=2024-12-31", headers=headers)) == []
