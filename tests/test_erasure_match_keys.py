"""Erasure takes a person's blind indexes with their data key: the erased person is not recognisable by
them, and a new referral of the same person is not matched to a record that cannot be read."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic.migration import MigrationContext
from alembic.operations import Operations

from referral_api.referrals.models import MatchKey, Referral
from tests.case_helpers import open_case
from tests.referral_data import referral_body

ERASE = {"reason": "person_request"}
MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations" / "versions"


def _submit(client, world, ref: str, who="police") -> str:
    answer = client.post("/api/v1/referrals", json=referral_body(external_reference=ref),
                         headers=world.headers(who))
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def _keys_of(session, referral_id: str) -> int:
    session.expire_all()
    return session.scalar(sa.select(sa.func.count()).select_from(MatchKey)
                          .where(MatchKey.referral_id == uuid.UUID(referral_id)))


def _opening_referral(session, case_id: str) -> uuid.UUID:
    [referral_id] = session.scalars(sa.select(Referral.id).where(Referral.case_id == uuid.UUID(case_id)))
    return referral_id


def _staff_view(client, world, referral_id: str) -> dict:
    return client.get(f"/api/v1/referrals/{referral_id}", headers=world.headers("coordinator")).get_json()


def test_erasing_a_referral_deletes_its_match_keys_and_recounts_the_others(client, world, session):
    erased = _submit(client, world, "ERK-1")
    later = _submit(client, world, "ERK-2", who="ngo")  # the same person, referred again before erasure
    assert _keys_of(session, erased) > 0 and _staff_view(client, world, later)["possible_duplicates"] == 1
    answer = client.post(f"/api/v1/referrals/{erased}/erase", json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200, answer.get_json()
    assert _keys_of(session, erased) == 0
    assert _keys_of(session, later) > 0  # the living referral keeps its own
    assert _staff_view(client, world, later)["possible_duplicates"] == 0
    matches = client.get(f"/api/v1/referrals/{later}/matches", headers=world.headers("coordinator"))
    assert matches.status_code == 200 and matches.get_json()["items"] == []


def test_a_person_referred_again_after_erasure_is_not_matched_to_the_erased_case(client, world, session):
    case_id = open_case(client, world, external_reference="ERK-3")
    opened = _opening_referral(session, case_id)
    answer = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200, answer.get_json()
    assert _keys_of(session, str(opened)) == 0
    again = _submit(client, world, "ERK-4")
    assert _staff_view(client, world, again)["possible_duplicates"] == 0
    matches = client.get(f"/api/v1/referrals/{again}/matches", headers=world.headers("coordinator"))
    assert matches.status_code == 200, matches.get_json()  # not a 410 for the erased record
    assert matches.get_json()["items"] == []


def _run_migration(session, filename: str) -> None:
    spec = importlib.util.spec_from_file_location("migration_under_test", MIGRATIONS / filename)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with Operations.context(MigrationContext.configure(session.connection())):
        module.upgrade()


def test_migration_0998_deletes_the_keys_left_by_earlier_erasures(client, world, session):
    erased, living = _submit(client, world, "ERK-5"), _submit(client, world, "ERK-6", who="ngo")
    kept = session.execute(sa.select(MatchKey.kind, MatchKey.digest)
                           .where(MatchKey.referral_id == uuid.UUID(erased))).all()
    assert client.post(f"/api/v1/referrals/{erased}/erase", json=ERASE,
                       headers=world.headers("admin")).status_code == 200
    # as an erasure before 0998 left them
    session.execute(sa.insert(MatchKey), [{"referral_id": uuid.UUID(erased), "kind": kind, "digest": digest}
                                          for kind, digest in kept])
    session.execute(sa.update(Referral).where(Referral.id == uuid.UUID(living)).values(possible_duplicates=1))
    session.commit()
    assert _keys_of(session, erased) == len(kept) > 0
    _run_migration(session, "0998_erased_referrals_lose_their_match_keys.py")
    session.commit()
    assert _keys_of(session, erased) == 0 and _keys_of(session, living) > 0
    assert _staff_view(client, world, living)["possible_duplicates"] == 0  # counted again, without it


def test_erasure_drops_the_partners_own_case_number(client, world, session):
    """Free text up to 100 characters, kept in plain on the referral, the case's participants and the
    records' event payloads: after erasure it is in none of them, and the number can be used again."""
    from referral_api.cases.models import CaseParticipant
    from referral_api.events import OutboxEvent

    number = "Dorj Batbayar b.1999-11-30 Macau"
    case_id = open_case(client, world, external_reference=number)
    referral_id = _opening_referral(session, case_id)
    assert client.get(f"/api/v1/cases/status?external_reference={number}",
                      headers=world.headers("police")).status_code == 200
    answer = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200, answer.get_json()
    session.expire_all()
    left = {
        "referrals": session.scalar(sa.select(sa.func.count()).select_from(Referral)
                                    .where(Referral.external_reference == number)),
        "case_participants": session.scalar(sa.select(sa.func.count()).select_from(CaseParticipant)
                                            .where(CaseParticipant.external_reference == number)),
        "outbox_events": sum(number in str(p) for p in session.scalars(sa.select(OutboxEvent.payload))),
    }
    assert left == {"referrals": 0, "case_participants": 0, "outbox_events": 0}
    events = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.resource_id.in_(
        [uuid.UUID(case_id), referral_id]))).all()
    assert events and all("reference" in e.payload for e in events)  # the thin rest stays
    erased = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("police")).get_json()
    assert erased["erased"] is True
    assert client.get(f"/api/v1/cases/status?external_reference={number}",
                      headers=world.headers("police")).status_code == 404
    again = client.post("/api/v1/referrals", json=referral_body(external_reference=number),
                        headers=world.headers("police"))
    assert again.status_code == 201, again.get_json()


def test_migration_0999_drops_the_case_numbers_earlier_erasures_left(client, world, session):
    from referral_api.cases.models import CaseParticipant
    from referral_api.events import OutboxEvent

    number, kept_number = "MO-0999-1", "MO-0999-2"
    case_id, living = open_case(client, world, external_reference=number), _submit(client, world, kept_number)
    referral_id = _opening_referral(session, case_id)
    assert client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE,
                       headers=world.headers("admin")).status_code == 200
    # as an erasure before 0999 left them
    session.execute(sa.update(Referral).where(Referral.id == referral_id).values(external_reference=number))
    session.execute(sa.update(CaseParticipant).where(CaseParticipant.case_id == uuid.UUID(case_id))
                    .values(external_reference=number))
    for event in session.scalars(sa.select(OutboxEvent).where(OutboxEvent.resource_id == referral_id)):
        event.payload = {**event.payload, "external_reference": number}
    session.commit()
    _run_migration(session, "0999_erased_records_lose_partner_case_numbers.py")
    session.commit()
    session.expire_all()
    payloads = [str(p) for p in session.scalars(sa.select(OutboxEvent.payload))]
    assert not any(number in p for p in payloads) and any(kept_number in p for p in payloads)
    assert session.scalar(sa.select(Referral.external_reference).where(Referral.id == referral_id)) is None
    assert session.scalar(sa.select(sa.func.count()).select_from(CaseParticipant)
                          .where(CaseParticipant.external_reference == number)) == 0
    assert session.scalar(sa.select(Referral.external_reference)
                          .where(Referral.id == uuid.UUID(living))) == kept_number
