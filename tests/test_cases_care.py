"""Services and shelters of a case (docs/domain.md, Services): providers, capacity, occupancy."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from referral_api.cases.models import CaseService, Shelter
from referral_api.events import OutboxEvent
from tests.case_helpers import add_participant, open_case


def _shelter(session, capacity, name="MGEC shelter, Ulaanbaatar", city="Ulaanbaatar"):
    shelter = Shelter(id=uuid.uuid4(), name=name, city=city, capacity=capacity)
    session.add(shelter)
    session.commit()
    return str(shelter.id)


def _place(client, world, case_id, shelter_id, status="planned"):
    return client.post(
        f"/api/v1/cases/{case_id}/services",
        json={
            "kind": "shelter",
            "shelter_id": shelter_id,
            "status": status,
            "note": "Room 4, near the nurse.",
        },
        headers=world.headers("coordinator"),
    )


def _occupancy(client, world):
    items = client.get("/api/v1/shelters", headers=world.headers("coordinator")).get_json()["items"]
    return {s["id"]: (s["occupancy"], s["capacity"]) for s in items}


def test_a_full_shelter_refuses_a_placement_and_occupancy_follows(client, world, session):
    shelter = _shelter(session, 2)
    cases = [open_case(client, world, external_reference=f"MO-S-{i}") for i in range(3)]
    first, second = (_place(client, world, c, shelter) for c in cases[:2])
    assert first.status_code == second.status_code == 201
    assert _occupancy(client, world)[shelter] == (2, 2)
    full = _place(client, world, cases[2], shelter)
    assert full.status_code == 409 and full.get_json()["occupancy"] == 2
    done = client.patch(
        f"/api/v1/services/{second.get_json()['id']}",
        json={"status": "completed"},
        headers=world.headers("coordinator"),
    )
    assert done.status_code == 200 and done.get_json()["status"] == "completed"
    assert _occupancy(client, world)[shelter] == (1, 2)
    assert _place(client, world, cases[2], shelter).status_code == 201
    # bringing a finished placement back while the shelter is full is refused too
    back = client.patch(
        f"/api/v1/services/{second.get_json()['id']}",
        json={"status": "in_progress"},
        headers=world.headers("coordinator"),
    )
    assert back.status_code == 409
    raw = session.execute(sa.text("SELECT note FROM case_services")).scalars().all()
    assert all(b"nurse" not in n for n in raw)
    assert first.get_json()["note"] == "Room 4, near the nurse."


def test_service_input_is_checked(client, world, session):
    case_id = open_case(client, world)
    shelter = _shelter(session, 1)
    for body, field in (
        ({"kind": "shelter"}, "shelter_id"),
        ({"kind": "medical", "shelter_id": shelter}, "shelter_id"),
        ({"kind": "massage"}, "kind"),
        ({"kind": "medical", "starts_on": "2026-05-02", "ends_on": "2026-05-01"}, "ends_on"),
        ({"kind": "medical", "provider_id": str(uuid.uuid4())}, "provider_id"),
        ({"kind": "shelter", "shelter_id": str(uuid.uuid4())}, "shelter_id"),
    ):
        response = client.post(
            f"/api/v1/cases/{case_id}/services", json=body, headers=world.headers("coordinator")
        )
        assert response.status_code == 422 and field in response.get_json()["errors"], (
            body,
            response.get_json(),
        )


def test_a_service_provider_records_and_sees_only_its_own_services(client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "ngo", "service_provider")
    mgec = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "legal_aid", "note": "Lawyer Oyun."},
        headers=world.headers("coordinator"),
    )
    own = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "psychosocial", "status": "in_progress"},
        headers=world.headers("ngo"),
    )
    assert own.status_code == 201 and own.get_json()["provider_id"] == str(world.orgs["ngo"].id)
    other = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "medical", "provider_id": str(world.orgs["iom"].id)},
        headers=world.headers("ngo"),
    )
    assert other.status_code == 403
    listed = client.get(f"/api/v1/cases/{case_id}/services", headers=world.headers("ngo")).get_json()["items"]
    assert [s["id"] for s in listed] == [own.get_json()["id"]]
    staff = client.get(f"/api/v1/cases/{case_id}/services", headers=world.headers("coordinator")).get_json()
    assert len(staff["items"]) == 2
    assert (
        client.patch(
            f"/api/v1/services/{mgec.get_json()['id']}",
            json={"status": "completed"},
            headers=world.headers("ngo"),
        ).status_code
        == 404
    )
    etag = own.headers["ETag"]
    stale = client.patch(
        f"/api/v1/services/{own.get_json()['id']}",
        json={"status": "completed"},
        headers=world.headers("ngo", **{"If-Match": '"stale"'}),
    )
    assert stale.status_code == 412
    done = client.patch(
        f"/api/v1/services/{own.get_json()['id']}",
        json={"status": "completed"},
        headers=world.headers("ngo", **{"If-Match": etag}),
    )
    assert done.status_code == 200 and done.headers["ETag"] != etag
    published = session.scalars(
        sa.select(OutboxEvent.payload).where(OutboxEvent.type == "service.updated").order_by(OutboxEvent.seq)
    ).all()
    assert [p["status"] for p in published] == ["planned", "in_progress", "completed"]
    assert all(
        set(p) <= {"id", "case_id", "case_reference", "service_id", "kind", "status"} for p in published
    )


def test_participants_added_and_removed_by_mgec_with_events(client, world, session):
    case_id = open_case(client, world)
    listed = client.get(
        f"/api/v1/cases/{case_id}/participants", headers=world.headers("coordinator")
    ).get_json()
    assert [(p["organisation_id"], p["role"], p["external_reference"]) for p in listed["items"]] == [
        (str(world.orgs["police"].id), "referrer", "MO-PSP-2026-0412")
    ]
    assert client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).status_code == 404
    add_participant(client, world, case_id, "embassy", "embassy")
    twice = client.post(
        f"/api/v1/cases/{case_id}/participants",
        json={"organisation_id": str(world.orgs["embassy"].id), "role": "embassy"},
        headers=world.headers("coordinator"),
    )
    assert twice.status_code == 409
    assert client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).status_code == 200
    removed = client.delete(
        f"/api/v1/cases/{case_id}/participants/{world.orgs['embassy'].id}",
        headers=world.headers("coordinator"),
    )
    assert removed.status_code == 204
    assert client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("embassy")).status_code == 404
    types = session.scalars(
        sa.select(OutboxEvent.type)
        .where(OutboxEvent.resource_id == uuid.UUID(case_id))
        .order_by(OutboxEvent.seq)
    ).all()
    assert [t.value for t in types] == ["case.participant_added", "case.participant_removed"]


def test_organisations_seeing_a_case_for_webhooks(client, world, session):
    from referral_api.cases.visibility import organisations_seeing

    case_id = open_case(client, world)
    add_participant(client, world, case_id, "iom", "iom")
    assert organisations_seeing(session, uuid.UUID(case_id)) == {
        world.orgs["mgec"].id,
        world.orgs["police"].id,
        world.orgs["iom"].id,
    }


def test_demo_seed_brings_shelters_and_cases_at_several_stages(run_cli, session):
    import json

    from referral_api.cases.models import Case

    first = run_cli("demo", "seed", "--json")
    assert first.exit_code == 0, first.output
    assert set(json.loads(first.output)["shelters"]) == {"Ulaanbaatar", "Zamiin-Uud"}
    stages = sorted(s.value for s in session.scalars(sa.select(Case.stage)))
    assert stages == ["in_transit", "rehabilitation", "reintegration", "travel_documents"]
    again = json.loads(run_cli("demo", "seed", "--json").output)
    assert again["cases_created"] == [] and session.scalar(sa.select(sa.func.count()).select_from(Case)) == 4
    taken = session.scalar(
        sa.select(sa.func.count()).select_from(CaseService).where(CaseService.kind == "shelter")
    )
    assert taken == 1


def test_a_participant_sees_the_person_only_as_far_as_consent_covers_its_kind(client, world, session):
    from referral_api.audit.models import AuditEvent

    case_id = open_case(client, world)  # consent: share with embassy and iom
    add_participant(client, world, case_id, "iom", "iom")
    iom = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("iom")).get_json()["person"]
    assert iom["given_name"] == "Batbayar" and iom["current_location"] == "Police shelter, Macau"
    reads = session.scalars(
        sa.select(AuditEvent.details).where(
            AuditEvent.action == "cases:case:read", AuditEvent.resource_id == case_id
        )
    ).all()
    assert reads == [{"person": True}]
    private = open_case(client, world, external_reference="MO-P-2", consent__share_with=[])
    add_participant(client, world, private, "iom", "iom")
    add_participant(client, world, private, "embassy", "embassy")
    for who in ("iom", "embassy", "police"):
        view = client.get(f"/api/v1/cases/{private}", headers=world.headers(who)).get_json()
        assert view["person"] is None, who
    staff = client.get(f"/api/v1/cases/{private}", headers=world.headers("coordinator")).get_json()
    assert staff["person"]["passport_number"] == "E1234567"
    status = client.get(f"/api/v1/cases/{private}/status", headers=world.headers("coordinator")).get_json()
    assert "person" not in status


def test_a_service_provider_places_only_in_its_own_shelters_and_learns_no_figures(client, world, session):
    """Shelters are MGEC's to know (GET /shelters is 403 for partners): a service provider naming a
    shelter it does not run is answered as for a missing one, takes no bed there, and a full shelter
    of its own is a 409 without name, capacity or occupancy."""
    ngo = world.orgs["ngo"].id
    mgec_run = _shelter(session, 5, name="MGEC safe house, Bayanzurkh")
    own = Shelter(id=uuid.uuid4(), name="FIZ house, Khan-Uul", city="Ulaanbaatar", capacity=1,
                  organisation_id=ngo)
    session.add(own)
    session.commit()
    assert client.get("/api/v1/shelters", headers=world.headers("ngo")).status_code == 403
    cases = [open_case(client, world, external_reference=f"MO-OWN-{i}") for i in range(3)]
    for case_id in cases:
        add_participant(client, world, case_id, "ngo", "service_provider")

    def place(case_id, shelter_id, status="planned", who="ngo"):
        return client.post(f"/api/v1/cases/{case_id}/services", headers=world.headers(who),
                           json={"kind": "shelter", "shelter_id": shelter_id, "status": status})

    def answer(response):
        return response.status_code, {k: response.get_json().get(k) for k in ("title", "detail", "errors")}

    missing = answer(place(cases[0], str(uuid.uuid4())))
    assert missing[0] == 422 and "shelter_id" in missing[1]["errors"]
    for status in ("planned", "completed"):
        assert answer(place(cases[0], mgec_run, status)) == missing, status
    assert _occupancy(client, world)[mgec_run] == (0, 5)
    assert place(cases[0], str(own.id)).status_code == 201
    full = place(cases[1], str(own.id))
    body = full.get_json()
    assert full.status_code == 409 and "shelter_id" in body["errors"], body
    assert "FIZ" not in body["detail"] and "capacity" not in body and "occupancy" not in body, body
    # MGEC staff are still told which shelter is full and by how much
    staff = place(cases[1], str(own.id), who="coordinator")
    assert staff.status_code == 409 and staff.get_json()["occupancy"] == 1
    assert "FIZ" in staff.get_json()["detail"]
    # a finished placement in a shelter the provider does not run is not brought back by it
    done = client.post(f"/api/v1/cases/{cases[2]}/services", headers=world.headers("coordinator"),
                       json={"kind": "shelter", "shelter_id": mgec_run, "status": "completed",
                             "provider_id": str(ngo)})
    assert done.status_code == 201, done.get_json()
    back = client.patch(f"/api/v1/services/{done.get_json()['id']}", json={"status": "in_progress"},
                        headers=world.headers("ngo"))
    assert back.status_code == 403 and _occupancy(client, world)[mgec_run] == (0, 5)


def test_a_providers_sealed_notes_follow_the_persons_consent(client, world, session):
    """A service note is personal (a diagnosis, a doctor): a provider reads it only while the person's
    consent covers its kind of organisation, as the person's fields, in every answer; a note not shown
    is no audited read."""
    from referral_api.audit.models import AuditEvent

    case_id = open_case(client, world, consent__share_with=["embassy", "iom", "ngo"])
    add_participant(client, world, case_id, "ngo", "service_provider")
    note = "HIV treatment at the National Center for Communicable Diseases, Dr Bold"
    made = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "medical", "provider_id": str(world.orgs["ngo"].id), "note": note},
        headers=world.headers("coordinator"),
    )
    service_id = made.get_json()["id"]

    def reads():
        return session.scalars(sa.select(AuditEvent.details).where(
            AuditEvent.action == "cases:case:read", AuditEvent.resource_id == case_id,
            AuditEvent.organisation_id == world.orgs["ngo"].id,
        ).order_by(AuditEvent.occurred_at, AuditEvent.seq)).all()  # in the order they were read

    def ngo_notes(key):
        listed = client.get(f"/api/v1/cases/{case_id}/services", headers=world.headers("ngo")).get_json()
        patched = client.patch(f"/api/v1/services/{service_id}", json={"status": "in_progress"},
                               headers=world.headers("ngo"))
        body = {"kind": "psychosocial", "note": "Counselling, Tuesdays"}
        posted = [client.post(f"/api/v1/cases/{case_id}/services", json=body,
                              headers=world.headers("ngo", **{"Idempotency-Key": key})) for _ in range(2)]
        assert posted[1].headers.get("Idempotent-Replayed") == "true"
        notes = [s["note"] for s in listed["items"]]
        return notes, patched.get_json()["note"], [p.get_json()["note"] for p in posted]

    assert ngo_notes("k-1") == ([note], note, ["Counselling, Tuesdays"] * 2)
    shown = reads()
    assert len(shown) == 2 and shown[0] == {"service_notes": [service_id]}  # the list, then the replay
    withdrawn = client.post(f"/api/v1/cases/{case_id}/consent", json={"share_with": ["embassy", "iom"]},
                            headers=world.headers("coordinator"))
    assert withdrawn.status_code == 200
    before = len(reads())
    listed, patched, posted = ngo_notes("k-2")
    assert listed == [None, None] and patched is None and posted == [None, None]
    assert len(reads()) == before  # nothing shown, nothing audited
    staff = client.get(f"/api/v1/cases/{case_id}/services", headers=world.headers("coordinator")).get_json()
    assert sorted(s["note"] or "" for s in staff["items"]) == sorted(
        [note, "Counselling, Tuesdays", "Counselling, Tuesdays"])
