"""On PostgreSQL, concurrent writes to one case or one shelter: row locks decide, nobody overshoots."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from referral_api import create_app, dbmigrate
from referral_api.access import Actor, OrganisationRef
from referral_api.cases import care, moves
from referral_api.cases.models import Case, CaseEvent, CaseService, ServiceKind, ServiceStatus, Shelter
from referral_api.cases.stages import Stage
from referral_api.db import database
from referral_api.errors import Conflict
from referral_api.organisations.models import Organisation, OrganisationKind
from tests.conftest import throwaway_database

N = 20


@pytest.fixture
def fresh(backend, tmp_path):
    """An app on a throwaway database (committed data, separate connections), with MGEC and an actor."""
    with throwaway_database(backend, tmp_path) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp_path)})
        db = database(app)
        dbmigrate.upgrade(db)
        with db.sessionmaker() as s:
            mgec = Organisation(id=uuid.uuid4(), name="MGEC", kind=OrganisationKind.MGEC, country="MN")
            s.add(mgec)
            s.commit()
        actor = Actor(
            OrganisationRef(mgec.id, "mgec"), client_id="c-1", user_id=None, role=None, scopes=frozenset()
        )
        yield app, db, actor
        db.engine.dispose()


def _new_cases(db, count):
    now = datetime.now(UTC)
    with db.sessionmaker() as s:
        org = s.scalar(sa.select(Organisation.id))
        ids = [uuid.uuid4() for _ in range(count)]
        s.add_all(
            Case(
                id=i,
                reference=f"CASE-2026-{n:06d}",
                opened_at=now,
                opened_by_organisation_id=org,
                stage_since=now,
                last_occurred_at=now,
                share_with=[],
            )
            for n, i in enumerate(ids, 1)
        )
        s.commit()
    return ids


def _race(app, db, work):
    """Run `work(session, i)` in N threads at once; count wins and conflicts."""
    outcome = {"won": 0, "conflict": 0, "other": []}
    lock, barrier = threading.Lock(), threading.Barrier(N)

    def run(i):
        with app.app_context(), db.sessionmaker() as session:
            barrier.wait()
            try:
                work(session, i)
                key = "won"
            except Conflict:
                key = "conflict"
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                with lock:
                    outcome["other"].append(repr(exc))
                return
            with lock:
                outcome[key] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


@pytest.mark.postgres_only
def test_20_concurrent_moves_from_one_stage_make_exactly_one(fresh):
    app, db, actor = fresh
    (case_id,) = _new_cases(db, 1)
    details = {"verified_on": datetime.now(UTC).date().isoformat(), "method": "passport"}
    outcome = _race(
        app,
        db,
        lambda s, i: moves.transition(
            s, actor, str(case_id), {"to": Stage.TRAVEL_DOCUMENTS, "details": details}
        ),
    )
    assert outcome == {"won": 1, "conflict": N - 1, "other": []}
    with db.sessionmaker() as s:
        assert s.get(Case, case_id).stage is Stage.TRAVEL_DOCUMENTS
        moved = s.scalar(
            sa.select(sa.func.count()).select_from(CaseEvent).where(CaseEvent.case_id == case_id)
        )
        assert moved == 1


@pytest.mark.postgres_only
def test_20_concurrent_placements_into_5_free_beds_make_exactly_5(fresh):
    app, db, actor = fresh
    case_ids = _new_cases(db, N + 1)
    with db.sessionmaker() as s:
        shelter = Shelter(id=uuid.uuid4(), name="Zamiin-Uud shelter", city="Zamiin-Uud", capacity=6)
        s.add(shelter)
        s.flush()
        s.add(
            CaseService(
                id=uuid.uuid4(),
                case_id=case_ids[-1],
                kind=ServiceKind.SHELTER,
                shelter_id=shelter.id,
                status=ServiceStatus.IN_PROGRESS,
            )
        )  # one bed taken: 5 free
        s.commit()
    outcome = _race(
        app,
        db,
        lambda s, i: care.add_service(
            s,
            actor,
            str(case_ids[i]),
            {"kind": ServiceKind.SHELTER, "shelter_id": shelter.id, "status": ServiceStatus.PLANNED},
        ),
    )
    assert outcome == {"won": 5, "conflict": N - 5, "other": []}
    with db.sessionmaker() as s:
        taken = s.scalar(
            sa.select(sa.func.count()).select_from(CaseService).where(CaseService.shelter_id == shelter.id)
        )
        assert taken == 6


@pytest.mark.postgres_only
def test_a_capacity_cut_racing_placements_never_leaves_a_shelter_over_capacity(fresh):
    from referral_api.cases import shelters

    app, db, actor = fresh
    case_ids = _new_cases(db, N)
    with db.sessionmaker() as s:
        shelter = Shelter(id=uuid.uuid4(), name="Darkhan shelter", city="Darkhan", capacity=10)
        s.add(shelter)
        s.commit()

    def work(s, i):
        if i == N // 2:  # one admin cuts the capacity to 5 while 19 placements arrive
            shelters.update_shelter(s, actor, str(shelter.id), {"capacity": 5})
        else:
            placement = {
                "kind": ServiceKind.SHELTER, "shelter_id": shelter.id, "status": ServiceStatus.PLANNED
            }
            care.add_service(s, actor, str(case_ids[i]), placement)

    outcome = _race(app, db, work)
    assert outcome["other"] == []
    with db.sessionmaker() as s:
        capacity = s.get(Shelter, shelter.id).capacity
        taken = s.scalar(
            sa.select(sa.func.count()).select_from(CaseService).where(CaseService.shelter_id == shelter.id)
        )
    assert taken <= capacity
    assert outcome["won"] == taken + (1 if capacity == 5 else 0)


def test_a_participation_removed_while_the_case_list_is_read_leaves_the_case_out(
    client, world, session, monkeypatch
):
    """GET /cases reads the page, then the caller's roles (two statements, two snapshots under READ
    COMMITTED): a participation removed in between drops the case from the page, never a 500."""
    from referral_api.cases import services as case_services
    from referral_api.cases.models import CaseParticipant
    from tests.case_helpers import add_participant, open_case

    kept, gone = (open_case(client, world, who="police", external_reference=f"MO-R-{i}") for i in range(2))
    for case_id in (kept, gone):
        add_participant(client, world, case_id, "embassy", "embassy")
    world.token("embassy")  # fetched before the removal is armed
    real, embassy = case_services.keyset_page, world.orgs["embassy"].id

    def page_then_removed(db, query, **kwargs):
        rows = real(db, query, **kwargs)
        # what a coordinator's DELETE .../participants/{embassy} of one case, committed meanwhile, does
        db.execute(sa.delete(CaseParticipant).where(
            CaseParticipant.case_id == uuid.UUID(gone), CaseParticipant.organisation_id == embassy
        ))
        return rows

    monkeypatch.setattr(case_services, "keyset_page", page_then_removed)
    response = client.get("/api/v1/cases", headers=world.headers("embassy"))
    assert response.status_code == 200, response.get_json()
    assert [c["id"] for c in response.get_json()["items"]] == [kept]


@pytest.mark.postgres_only
def test_a_move_queued_behind_its_participants_removal_does_not_win(fresh, monkeypatch):
    """The move waits on the case's row lock while MGEC removes the mover from the case: once the lock
    is its own it reads the role afresh (a second statement, a new snapshot), finds none and is a 404."""
    from referral_api.access import OrganisationRef
    from referral_api.cases import participants
    from referral_api.cases.models import CaseParticipant
    from referral_api.cases.stages import ParticipantRole
    from referral_api.errors import NotFound

    app, db, staff = fresh
    (case_id,) = _new_cases(db, 1)
    with db.sessionmaker() as s:
        embassy = Organisation(id=uuid.uuid4(), name="Embassy in Seoul", kind=OrganisationKind.EMBASSY,
                               country="KR")
        s.add(embassy)
        s.flush()
        s.add(CaseParticipant(case_id=case_id, organisation_id=embassy.id, role=ParticipantRole.EMBASSY,
                              added_at=datetime.now(UTC)))
        s.commit()
        embassy_actor = Actor(OrganisationRef(embassy.id, "embassy"), client_id="c-emb", user_id=None,
                              role=None, scopes=frozenset())
    locked, release, outcome = threading.Event(), threading.Event(), {}
    real_commit = participants.commit

    def slow_commit(session):
        session.flush()  # the participation is deleted and the case row locked ...
        locked.set()
        release.wait(10)  # ... while the embassy's move queues on that lock
        real_commit(session)

    monkeypatch.setattr(participants, "commit", slow_commit)

    def remove():
        with app.app_context(), db.sessionmaker() as session:
            participants.remove_participant(session, staff, str(case_id), str(embassy_actor.organisation_id))

    def move():
        details = {"verified_on": datetime.now(UTC).date().isoformat(), "method": "passport"}
        with app.app_context(), db.sessionmaker() as session:
            try:
                moves.transition(session, embassy_actor, str(case_id),
                                 {"to": Stage.TRAVEL_DOCUMENTS, "details": details})
                outcome["move"] = "won"
            except NotFound:
                outcome["move"] = "404"

    remover = threading.Thread(target=remove)
    remover.start()
    assert locked.wait(10)
    mover = threading.Thread(target=move)
    mover.start()
    mover.join(1.0)
    assert mover.is_alive()  # waiting on the case's row lock
    release.set()
    remover.join(10)
    mover.join(10)
    with db.sessionmaker() as s:
        assert s.scalar(sa.select(Case.stage).where(Case.id == case_id)) is Stage.VERIFICATION
    assert outcome == {"move": "404"}
