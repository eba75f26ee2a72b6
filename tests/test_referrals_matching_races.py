"""At the same moment (PostgreSQL, read committed): writers of other referrals' duplicate counts never
deadlock. Each locks its own referral and then updates those sharing a match key with it; two answers
on two referrals of one person each held their own and waited for the other's, and PostgreSQL killed
one of them (a partner's answer lost as a 503). They now take one lock first (matching.hold_matching)."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from referral_api.access import Actor, OrganisationRef
from referral_api.db import database
from referral_api.organisations.models import Organisation, OrganisationKind
from referral_api.referrals import matching
from referral_api.referrals import services as referral_services
from referral_api.referrals.models import Referral
from referral_api.referrals.schemas import InformationInSchema, ReferralInSchema
from tests.conftest import migrated_app
from tests.referral_data import referral_body


@pytest.fixture
def own_app(backend, tmp_path) -> Iterator:
    if backend != "postgresql":
        pytest.skip("transactions at the same moment: PostgreSQL (SQLite has one writer)")
    with migrated_app(backend, tmp_path) as app:
        db = database(app)
        with db.sessionmaker() as s:
            police = Organisation(id=uuid.uuid4(), name="Macau police", kind=OrganisationKind.POLICE,
                                  country="MO")
            s.add(police)
            s.commit()
        actor = Actor(OrganisationRef(police.id, "police"), client_id="c-police", user_id=None, role=None,
                      scopes=frozenset({"referrals:submit", "referrals:read"}))
        yield app, db, actor


def _submit(app, db, actor, ref: str) -> str:
    with app.app_context(), db.sessionmaker() as s:
        data = ReferralInSchema().load(referral_body(external_reference=ref))  # one person each time
        return str(referral_services.submit(s, actor, data=data).id)


def _meeting_in_the_recount(monkeypatch, parties: int) -> None:
    """Each recount waits (up to 2 s) for the others to reach theirs: without the lock taken first, every
    party then holds its own referral's row and waits for the others'. With it, the first waits alone,
    gives up waiting and goes on; the others follow one by one."""
    barrier, real = threading.Barrier(parties, timeout=2), matching.recount_sharers

    def at_the_same_moment(session, referral_id, keys):
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return real(session, referral_id, keys)

    monkeypatch.setattr(matching, "recount_sharers", at_the_same_moment)


def _together(app, db, jobs) -> list[str]:
    outcome: list[str] = []

    def run(job):
        with app.app_context(), db.sessionmaker() as s:
            try:
                job(s)
                outcome.append("ok")
            except Exception as exc:  # noqa: BLE001  what went wrong is what the test shows
                outcome.append(repr(getattr(exc, "orig", exc))[:100])

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return outcome


def _counts(db, ids) -> list[int]:
    with db.sessionmaker() as s:
        return [s.scalar(sa.select(Referral.possible_duplicates).where(Referral.id == uuid.UUID(i)))
                for i in ids]


def _answer(actor, rid: str, city: str):
    data = InformationInSchema().load({"answer": "Her city.", "situation": {"identified_city": city}})
    return lambda s: referral_services.provide_information(s, actor, ref=rid, data=data)


def test_two_answers_on_referrals_of_one_person_at_the_same_moment_both_land(own_app, monkeypatch):
    app, db, actor = own_app
    ids = [_submit(app, db, actor, ref) for ref in ("DL-1", "DL-2")]
    _meeting_in_the_recount(monkeypatch, 2)
    answers = [_answer(actor, ids[0], "Taipa"), _answer(actor, ids[1], "Cotai")]
    assert _together(app, db, answers) == ["ok"] * 2
    assert _counts(db, ids) == [1, 1]

