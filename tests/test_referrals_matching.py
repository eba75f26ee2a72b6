"""Duplicate detection through blind indexes: Cyrillic and Latin spellings fold, documents always match."""

from __future__ import annotations

import pytest

from tests.referral_data import DELETE, referral_body

NO_DOCS = {
    "person__passport_number": DELETE,
    "person__national_id": DELETE,
    "person__aliases": DELETE,
    "person__names_cyrillic": DELETE,
}


def submit(client, world, ref, **overrides):
    response = client.post(
        "/api/v1/referrals",
        json=referral_body(external_reference=ref, **overrides),
        headers=world.headers("police"),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def matches(client, world, rid):
    response = client.get(f"/api/v1/referrals/{rid}/matches", headers=world.headers("coordinator"))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_cyrillic_and_latin_spellings_with_the_same_birth_year_match(client, world):
    latin = submit(client, world, "A-1", **NO_DOCS)
    cyrillic = submit(
        client,
        world,
        "A-2",
        **NO_DOCS,
        person__given_name="Батбаяр",
        person__family_name="Дорж",
        person__date_of_birth="1999-11-30",
    )
    found = matches(client, world, cyrillic)
    assert [m["referral_id"] for m in found] == [latin]
    assert found[0]["reasons"] == ["name_birth_year"]
    staff = client.get(f"/api/v1/referrals/{cyrillic}", headers=world.headers("coordinator")).get_json()
    assert staff["possible_duplicates"] == 1


def test_exact_dates_agreeing_score_higher_than_the_year_alone(client, world):
    first = submit(client, world, "B-1", **NO_DOCS)
    same_day = submit(client, world, "B-2", **NO_DOCS)
    found = matches(client, world, same_day)
    assert found[0]["referral_id"] == first and found[0]["reasons"] == ["date_of_birth", "name_birth_year"]
    assert found[0]["score"] == pytest.approx(0.6)


def test_a_different_birth_year_alone_does_not_match(client, world):
    submit(client, world, "C-1", **NO_DOCS)
    other_year = submit(client, world, "C-2", **NO_DOCS, person__date_of_birth="1997-04-12")
    assert matches(client, world, other_year) == []


def test_an_estimated_age_matches_a_year_either_side(client, world):
    known = submit(client, world, "D-1", **NO_DOCS)
    estimated = submit(
        client,
        world,
        "D-2",
        **NO_DOCS,
        person__date_of_birth=DELETE,
        person__estimated_age=_age_in_year(1999) + 1,
    )
    assert [m["referral_id"] for m in matches(client, world, estimated)] == [known]


def _age_in_year(birth_year: int) -> int:
    from datetime import date, timedelta

    return (date.today() - timedelta(days=3)).year - birth_year


def test_the_same_passport_always_matches(client, world):
    first = submit(client, world, "E-1")
    stranger = submit(
        client,
        world,
        "E-2",
        person__given_name="Oyunchimeg",
        person__family_name="Tseren",
        person__names_cyrillic=DELETE,
        person__aliases=DELETE,
        person__national_id=DELETE,
        person__date_of_birth="1985-01-01",
        person__passport_number="e 123-4567",
    )
    found = matches(client, world, stranger)
    assert [m["referral_id"] for m in found] == [first] and found[0]["reasons"] == ["passport"]
    assert "date_of_birth" not in found[0]["reasons"] and found[0]["score"] < 0.6


def test_the_lookup_decrypts_only_candidate_rows(client, world, opened):
    """Thirty unrelated referrals are never decrypted to find the one duplicate."""
    names = [
        "Oyun",
        "Saran",
        "Nomin",
        "Enkhjin",
        "Tsetseg",
        "Altantsetseg",
        "Bolormaa",
        "Khulan",
        "Anu",
        "Sarnai",
    ]
    for i in range(30):
        submit(
            client,
            world,
            f"F-{i}",
            **NO_DOCS,
            person__given_name=names[i % 10],
            person__family_name=f"Bat{i}",
            person__date_of_birth=f"{1970 + i}-02-02",
        )
    original = submit(client, world, "F-orig", **NO_DOCS)
    duplicate = submit(client, world, "F-dup", **NO_DOCS)
    opened.clear()  # what the submissions opened
    found = matches(client, world, duplicate)
    assert [m["referral_id"] for m in found] == [original]
    rows = {w.split(" of ")[1] for w in opened if w.startswith("referrals.")}
    assert rows <= {original, duplicate}, rows
    assert opened, "the candidate's date of birth is decrypted to score it"


@pytest.mark.parametrize(
    "hidden",
    ["\u200b", "\u200c", "\u00ad", "\u200e", "\u200f"],
    ids=["zero-width-space", "zero-width-non-joiner", "soft-hyphen", "left-to-right", "right-to-left"],
)
def test_an_invisible_format_character_does_not_hide_a_duplicate(client, world, hidden):
    """Tse<ZWSP>tseg is Tsetseg: format characters (Unicode Cf) are dropped before indexing."""
    plain = submit(client, world, "G-1", **NO_DOCS, person__given_name="Tsetseg", person__family_name="Bold")
    marked = submit(
        client, world, "G-2", **NO_DOCS,
        person__given_name=f"Tse{hidden}tseg", person__family_name=f"Bo{hidden}ld",
    )
    found = matches(client, world, marked)
    assert [m["referral_id"] for m in found] == [plain]
    assert "name_birth_year" in found[0]["reasons"]



def duplicates(client, world, rid) -> int:
    staff = client.get(f"/api/v1/referrals/{rid}", headers=world.headers("coordinator")).get_json()
    return staff["possible_duplicates"]


def test_the_earlier_referrals_count_a_later_duplicate(client, world):
    """The first referral of a person never learnt of the later ones: its count stayed 0."""
    first = submit(client, world, "F-1")
    second = submit(client, world, "F-2")
    assert [m["referral_id"] for m in matches(client, world, first)] == [second]
    assert (duplicates(client, world, first), duplicates(client, world, second)) == (1, 1)
    third = submit(client, world, "F-3", **NO_DOCS)  # the same name and birth year only
    assert [duplicates(client, world, r) for r in (first, second, third)] == [2, 2, 2]
    stranger = submit(client, world, "F-4", person__given_name="Oyunchimeg", person__family_name="Tseren",
                      person__names_cyrillic=DELETE, person__aliases=DELETE, person__national_id=DELETE,
                      person__passport_number="P7777777")
    assert duplicates(client, world, stranger) == 0
    assert [duplicates(client, world, r) for r in (first, second, third)] == [2, 2, 2]


def test_an_answer_that_changes_the_person_recounts_the_others(client, world):
    """The third referral turns out to be another person (another birth year): the first two stop
    counting it, and a fourth with its new values starts."""
    first = submit(client, world, "G-1", **NO_DOCS)
    second = submit(client, world, "G-2", **NO_DOCS)
    saran = {"person__date_of_birth": "1990-01-01", "person__given_name": "Saran"}
    other = submit(client, world, "G-3", **NO_DOCS, **saran)
    assert [duplicates(client, world, r) for r in (first, second, other)] == [1, 1, 0]
    answered = client.post(f"/api/v1/referrals/{second}/information",
                           json={"answer": "Her papers.", "person": {"date_of_birth": "1990-01-01",
                                                                     "given_name": "Saran"}},
                           headers=world.headers("police"))
    assert answered.status_code == 200, answered.get_json()
    assert [duplicates(client, world, r) for r in (first, second, other)] == [0, 1, 1]
