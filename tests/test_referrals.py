"""Referrals through HTTP with real tokens: intake, review, information, decisions (docs/domain.md)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Case
from referral_api.events import OutboxEvent
from referral_api.referrals.models import Referral
from tests.referral_data import DELETE, referral_body


def submit(client, world, who="police", **overrides):
    response = client.post("/api/v1/referrals", json=referral_body(**overrides), headers=world.headers(who))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def move(client, world, ref, action, who="coordinator", body=None, status=200):
    response = client.post(f"/api/v1/referrals/{ref}/{action}", json=body or {}, headers=world.headers(who))
    assert response.status_code == status, response.get_json()
    return response.get_json()


def events_of(session, referral_id):
    return [
        e.type.value
        for e in session.scalars(
            sa.select(OutboxEvent).where(OutboxEvent.resource_id == referral_id).order_by(OutboxEvent.seq)
        )
    ]


def test_submit_answers_201_with_location_and_partner_view(client, world, session):
    response = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police"))
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/referrals/{body['id']}"
    assert response.headers["ETag"]
    assert body["reference"].startswith("REF-") and body["status"] == "submitted"
    assert body["person"]["given_name"] == "Batbayar" and body["is_minor"] is False
    assert body["allowed_actions"] == ["information", "withdraw"]
    assert "decision_note" not in body and "submitted_by_organisation_id" not in body
    stored = session.get(Referral, uuid.UUID(body["id"]))
    assert stored.submitted_by_organisation_id == world.orgs["police"].id
    assert events_of(session, stored.id) == ["referral.submitted"]


def test_full_life_cycle_with_information_twice_and_acceptance(client, world, session):
    ref = submit(client, world)["id"]
    move(client, world, ref, "review")
    asked = move(client, world, ref, "request-information", body={"questions": "Does she hold a passport?"})
    assert asked["status"] == "information_requested"
    partner = client.get(f"/api/v1/referrals/{ref}", headers=world.headers("police")).get_json()
    assert [m["kind"] for m in partner["messages"]] == ["question"]
    answered = move(
        client,
        world,
        ref,
        "information",
        who="police",
        body={
            "answer": "Her passport was taken by the recruiter.",
            "person": {"passport_number": "E7654321"},
        },
    )
    assert answered["status"] == "submitted" and answered["person"]["passport_number"] == "E7654321"
    move(client, world, ref, "request-information", body={"questions": "Which city in Mongolia?"})
    move(
        client,
        world,
        ref,
        "information",
        who="police",
        body={"answer": "Sainshand.", "person": {"home_province": "dornogovi"}},
    )
    move(client, world, ref, "review")
    accepted = move(client, world, ref, "accept", body={"note": "Verified with the embassy."})
    assert accepted["status"] == "accepted" and accepted["case_id"]
    case = session.get(Case, uuid.UUID(accepted["case_id"]))
    referral = session.get(Referral, uuid.UUID(ref))
    assert case.reference.startswith("CASE-") and case.data_key_id == referral.data_key_id
    assert events_of(session, referral.id) == [
        "referral.submitted",
        "referral.under_review",
        "referral.information_requested",
        "referral.information_provided",
        "referral.information_requested",
        "referral.information_provided",
        "referral.under_review",
        "referral.accepted",
    ]
    # After the decision the referring partner sees the status only.
    after = client.get(f"/api/v1/referrals/{ref}", headers=world.headers("police")).get_json()
    assert "person" not in after and after["status"] == "accepted" and after["case_id"] == accepted["case_id"]


def test_accept_into_an_existing_case(client, world, session):
    first = submit(client, world)["id"]
    case_id = move(client, world, first, "accept")["case_id"]
    case_ref = session.get(Case, uuid.UUID(case_id)).reference
    second = submit(client, world, who="iom", source="iom", external_reference="IOM-KZ-77")["id"]
    linked = move(client, world, second, "accept", body={"case_id": case_ref})
    assert linked["case_id"] == case_id
    assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == 1
    missing = client.post(
        f"/api/v1/referrals/{submit(client, world, external_reference='X-3')['id']}/accept",
        json={"case_id": "CASE-1999-000001"},
        headers=world.headers("coordinator"),
    )
    assert missing.status_code == 422 and "case_id" in missing.get_json()["errors"]


def test_reject_with_each_reason(client, world, session):
    reasons = [
        "not_trafficking",
        "not_mongolian",
        "duplicate",
        "insufficient_information",
        "declined_by_person",
        "outside_mandate",
        "other",
    ]
    for i, reason in enumerate(reasons):
        ref = submit(client, world, external_reference=f"MO-{i}")["id"]
        body = move(
            client, world, ref, "reject", body={"reason": reason, "note": "Decided at the weekly review."}
        )
        assert body["status"] == "rejected" and body["reject_reason"] == reason
        assert events_of(session, uuid.UUID(ref))[-1] == "referral.rejected"
    assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == 0


def test_withdraw_by_the_submitter_only(client, world):
    ref = submit(client, world)["id"]
    other = client.post(f"/api/v1/referrals/{ref}/withdraw", json={}, headers=world.headers("embassy"))
    assert other.status_code == 404
    coordinator = client.post(
        f"/api/v1/referrals/{ref}/withdraw", json={}, headers=world.headers("coordinator")
    )
    assert coordinator.status_code == 403
    body = move(client, world, ref, "withdraw", who="police", body={"note": "She returned home on her own."})
    assert body["status"] == "withdrawn" and "person" not in body
    again = client.post(f"/api/v1/referrals/{ref}/withdraw", json={}, headers=world.headers("police"))
    assert again.status_code == 409


def test_illegal_moves_are_409_naming_the_allowed_ones_and_change_nothing(client, world, session):
    ref = submit(client, world)["id"]
    move(client, world, ref, "reject", body={"reason": "other", "note": "n"})
    before = session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent))
    for action, body in (("review", {}), ("accept", {}), ("request-information", {"questions": "q"})):
        response = client.post(
            f"/api/v1/referrals/{ref}/{action}", json=body, headers=world.headers("coordinator")
        )
        assert response.status_code == 409, action
        problem = response.get_json()
        assert problem["status"] == 409 and problem["allowed_actions"] == []
    submitted = submit(client, world, external_reference="MO-2")["id"]
    response = client.post(
        f"/api/v1/referrals/{submitted}/information", json={"answer": "x"}, headers=world.headers("police")
    )
    assert response.status_code == 200  # adding facts to a submitted referral is allowed
    reviewed = move(client, world, submitted, "review")
    assert reviewed["status"] == "under_review"
    response = client.post(
        f"/api/v1/referrals/{submitted}/review", json={}, headers=world.headers("coordinator")
    )
    assert response.status_code == 409
    assert sorted(response.get_json()["allowed_actions"]) == [
        "accept",
        "reject",
        "request_information",
        "withdraw",
    ]
    # submitted, information provided, under review: the refused moves wrote nothing
    assert session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)) == before + 3


def test_four_eyes_for_hotline_referrals(client, world):
    body = referral_body(source="hotline", external_reference=None)
    del body["external_reference"]
    response = client.post("/api/v1/referrals", json=body, headers=world.headers("coordinator"))
    assert response.status_code == 201, response.get_json()
    ref = response.get_json()["id"]
    own = client.post(f"/api/v1/referrals/{ref}/accept", json={}, headers=world.headers("coordinator"))
    assert own.status_code == 403 and "Four eyes" in own.get_json()["detail"]
    own = client.post(
        f"/api/v1/referrals/{ref}/reject",
        json={"reason": "other", "note": "n"},
        headers=world.headers("coordinator"),
    )
    assert own.status_code == 403
    assert move(client, world, ref, "accept", who="coordinator2")["status"] == "accepted"


def test_if_match_is_honoured(client, world):
    created = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police"))
    ref, tag = created.get_json()["id"], created.headers["ETag"]
    read = client.get(f"/api/v1/referrals/{ref}", headers=world.headers("coordinator"))
    assert read.headers["ETag"] == tag
    ok = client.post(
        f"/api/v1/referrals/{ref}/review", json={}, headers=world.headers("coordinator", **{"If-Match": tag})
    )
    assert ok.status_code == 200 and ok.headers["ETag"] != tag
    stale = client.post(
        f"/api/v1/referrals/{ref}/reject",
        json={"reason": "other", "note": "n"},
        headers=world.headers("coordinator", **{"If-Match": tag}),
    )
    assert stale.status_code == 412


def test_idempotency_key_on_submission(client, world, session):
    headers = world.headers("police", **{"Idempotency-Key": "mo-psp-0412-try"})
    first = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    again = client.post("/api/v1/referrals", json=referral_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.get_json()["id"] == again.get_json()["id"]
    other = client.post(
        "/api/v1/referrals", json=referral_body(urgency="routine") | {"concern": "other"}, headers=headers
    )
    assert other.status_code == 422
    assert session.scalar(sa.select(sa.func.count()).select_from(Referral)) == 1


def test_every_change_is_audited_without_personal_data(client, world, session):
    ref = submit(client, world)["id"]
    move(client, world, ref, "accept")
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.resource_id == ref)).all()
    assert {"referrals:referral:submit", "referrals:referral:accept"} <= set(actions)
    dump = " ".join(str(d) for d in session.scalars(sa.select(AuditEvent.details)))
    for personal in ("Batbayar", "E1234567", "Macau", "hotel"):
        assert personal not in dump


def test_minor_needs_guardian_or_child_protection(client, world, session):
    minor = {"person__date_of_birth": "2010-06-01"}
    refused = client.post("/api/v1/referrals", json=referral_body(**minor), headers=world.headers("police"))
    assert refused.status_code == 422 and "consent.method" in refused.get_json()["errors"]
    guardian = submit(client, world, consent__method="guardian", external_reference="MO-G", **minor)
    assert guardian["is_minor"] is True
    basis = submit(
        client,
        world,
        external_reference="MO-CP",
        legal_basis="child_protection",
        consent={"given": False},
        **minor,
    )
    assert basis["is_minor"] is True and basis["consent"]["share_with"] == []


def test_without_consent_only_what_the_basis_needs_is_kept(client, world):
    body = submit(client, world, consent={"given": False}, legal_basis="legal_obligation")
    assert body["person"]["phone"] is None and body["situation"]["narrative"] is None
    assert "person.phone" in body["minimised"] and "situation.narrative" in body["minimised"]
    assert body["person"]["passport_number"] == "E1234567"
    missing = client.post(
        "/api/v1/referrals", json=referral_body(consent={"given": False}), headers=world.headers("police")
    )
    assert missing.status_code == 422 and "legal_basis" in missing.get_json()["errors"]


def test_an_answer_without_consent_keeps_only_what_the_basis_needs(client, world):
    ref = submit(client, world, consent={"given": False}, legal_basis="legal_obligation")["id"]
    move(client, world, ref, "request-information", body={"questions": "Is her passport with her?"})
    answered = move(
        client, world, ref, "information", who="police",
        body={
            "answer": "Yes.",
            "person": {"passport_number": "E7654321", "phone": "+85366001234"},
            "situation": {"narrative": "Found at a hotel."},
        },
    )
    assert answered["person"]["passport_number"] == "E7654321"
    assert answered["person"]["phone"] is None and answered["situation"]["narrative"] is None
    assert {"person.phone", "situation.narrative"} <= set(answered["minimised"])
    assert answered["consent"]["share_with"] == []


def test_list_filters_and_keyset_pages(client, world):
    for i in range(5):
        submit(
            client, world, external_reference=f"P-{i}", situation__urgency="emergency" if i % 2 else "routine"
        )
    submit(client, world, who="iom", source="iom", external_reference="I-1")
    seen, cursor = [], None
    while True:
        url = "/api/v1/referrals?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=world.headers("coordinator")).get_json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6
    police = client.get("/api/v1/referrals", headers=world.headers("police")).get_json()["items"]
    assert len(police) == 5
    urgent = client.get(
        "/api/v1/referrals?urgency=emergency", headers=world.headers("coordinator")
    ).get_json()
    assert len(urgent["items"]) == 2
    assert (
        client.get("/api/v1/referrals?source=iom", headers=world.headers("coordinator")).get_json()["items"][
            0
        ]["source"]
        == "iom"
    )
    assert client.get("/api/v1/referrals", headers=world.headers("embassy")).get_json()["items"] == []
    bad = client.get("/api/v1/referrals?cursor=garbage", headers=world.headers("coordinator"))
    assert bad.status_code == 422 and "cursor" in bad.get_json()["errors"]
    _ = DELETE


def test_a_refused_request_does_not_burn_its_idempotency_key(client, world, session):
    rid = submit(client, world)["id"]
    headers = world.headers("embassy", **{"Idempotency-Key": "embassy-try-1"})
    assert client.post(f"/api/v1/referrals/{rid}/withdraw", json={}, headers=headers).status_code == 404
    from referral_api.idempotency import IdempotencyKey

    assert session.scalar(sa.select(sa.func.count()).select_from(IdempotencyKey)) == 0
    denied = sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "http:request:deny", AuditEvent.resource_id == rid)
    assert session.scalar(denied) == 1  # the refusal is audited even though the key is not kept
    police = world.headers("police", **{"Idempotency-Key": "police-bad-then-good"})
    bad = client.post(f"/api/v1/referrals/{rid}/information", json={"answer": ""}, headers=police)
    assert bad.status_code == 422
    good = client.post(f"/api/v1/referrals/{rid}/information", json={"answer": "Sainshand."}, headers=police)
    assert good.status_code == 200
