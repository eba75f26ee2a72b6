"""Participants do not learn each other: participant events reach MGEC and the organisation concerned
only, and a partner's timeline holds MGEC's entries and its own, without client or user ids."""

from __future__ import annotations

import sqlalchemy as sa

from referral_api.cases.stages import Stage
from referral_api.db import utcnow
from referral_api.webhooks import fanout
from referral_api.webhooks import services as webhook_services
from referral_api.webhooks.models import WebhookDelivery
from tests.case_helpers import add_participant, details_for, open_case, transition
from tests.webhook_helpers import Actor, align_cursor

PARTICIPANT_EVENTS = ("case.participant_added", "case.participant_removed")


def _subscribe(session, world, keys):
    subs = {}
    for key in keys:
        sub, _secret = webhook_services.create(
            session, actor=Actor(organisation_id=world.orgs[key].id), url="http://127.0.0.1:9/hook",
            events=[], allow_http_loopback=True,
        )
        subs[key] = sub.id
    session.commit()
    return subs


def _participant_events(session, sub_id):
    deliveries = session.scalars(
        sa.select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == sub_id)
        .order_by(WebhookDelivery.event_seq)
    ).all()
    return [
        (d.event.type.value, d.event.payload["organisation_id"])
        for d in deliveries
        if d.event.type.value in PARTICIPANT_EVENTS
    ]


def test_participant_events_reach_mgec_and_the_organisation_concerned_only(app, client, world, session):
    case_id = open_case(client, world, "police")
    with app.app_context():
        align_cursor(session)
        subs = _subscribe(session, world, ("mgec", "police", "embassy", "iom"))
    add_participant(client, world, case_id, "embassy", "embassy")
    add_participant(client, world, case_id, "iom", "iom")
    removed = client.delete(f"/api/v1/cases/{case_id}/participants/{world.orgs['iom'].id}",
                            headers=world.headers("coordinator"))
    assert removed.status_code == 204, removed.get_json()
    with app.app_context():
        fanout.fan_out(session, now=utcnow())
    embassy, iom = str(world.orgs["embassy"].id), str(world.orgs["iom"].id)
    got = {key: _participant_events(session, sub_id) for key, sub_id in subs.items()}
    assert got == {
        "mgec": [("case.participant_added", embassy), ("case.participant_added", iom),
                 ("case.participant_removed", iom)],
        "police": [],
        "embassy": [("case.participant_added", embassy)],
        "iom": [("case.participant_added", iom), ("case.participant_removed", iom)],
    }


def _timeline(client, world, case_id, who):
    response = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers(who))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def test_a_partner_sees_only_mgec_and_its_own_timeline_entries_without_client_or_user_ids(client, world):
    case_id = open_case(client, world, "police")
    add_participant(client, world, case_id, "embassy", "embassy")
    add_participant(client, world, case_id, "iom", "iom")
    target = Stage.TRAVEL_DOCUMENTS
    transition(client, world, case_id, target.value, who="embassy",
               details=details_for(Stage.VERIFICATION, target))
    mgec, embassy = str(world.orgs["mgec"].id), str(world.orgs["embassy"].id)

    staff = _timeline(client, world, case_id, "coordinator")
    assert {e["organisation_id"] for e in staff} == {mgec, embassy}
    assert all("client_id" in e and "user_id" in e for e in staff)
    assert any(e["user_id"] for e in staff if e["organisation_id"] == mgec)

    for who, sees in (("police", {mgec}), ("iom", {mgec}), ("embassy", {mgec, embassy})):
        entries = _timeline(client, world, case_id, who)
        assert entries and {e["organisation_id"] for e in entries} == sees, who
        assert all("client_id" not in e and "user_id" not in e for e in entries), who


def test_a_partner_filters_its_cases_by_participant_only_with_its_own_organisation(client, world):
    """?participant= with another organisation would tell a partner which of its cases that
    organisation takes part in (the participants are MGEC staff's to list): a 422 naming the field."""
    case_id = open_case(client, world, who="police")
    add_participant(client, world, case_id, "embassy", "embassy")
    for other in ("embassy", "ngo", "mgec"):
        refused = client.get(f"/api/v1/cases?participant={world.orgs[other].id}",
                             headers=world.headers("police"))
        assert refused.status_code == 422, (other, refused.get_json())
        assert refused.mimetype == "application/problem+json"
        assert "participant" in refused.get_json()["errors"]
    own = client.get(f"/api/v1/cases?participant={world.orgs['police'].id}", headers=world.headers("police"))
    assert own.status_code == 200 and [c["id"] for c in own.get_json()["items"]] == [case_id]
    staff = client.get(f"/api/v1/cases?participant={world.orgs['embassy'].id}",
                       headers=world.headers("coordinator"))
    assert staff.status_code == 200 and [c["id"] for c in staff.get_json()["items"]] == [case_id]


def test_a_participants_etag_follows_its_own_view_and_if_match_still_guards_its_writes(client, world):
    """A participant's case ETag does not tell it that another organisation joined or left (its view
    is unchanged), while MGEC staff's does; a move it makes changes it, and a stale one is a 412."""
    case_id = open_case(client, world, who="police")  # consent: share_with embassy, iom
    add_participant(client, world, case_id, "embassy", "embassy")
    url = f"/api/v1/cases/{case_id}"

    def read(who):
        response = client.get(url, headers=world.headers(who))
        return response.get_json(), response.headers["ETag"]

    (embassy_doc, embassy_tag), (_, staff_tag) = read("embassy"), read("coordinator")
    add_participant(client, world, case_id, "ngo", "service_provider")
    ngo = world.orgs["ngo"].id
    removed = client.delete(f"{url}/participants/{ngo}", headers=world.headers("coordinator"))
    assert removed.status_code == 204
    assert read("embassy") == (embassy_doc, embassy_tag)
    assert read("coordinator")[1] != staff_tag
    moved = client.post(f"{url}/transitions", headers=world.headers("embassy", **{"If-Match": embassy_tag}),
                        json={"to": "travel_documents",
                              "details": details_for(Stage.VERIFICATION, Stage.TRAVEL_DOCUMENTS)})
    assert moved.status_code == 200, moved.get_json()
    assert moved.headers["ETag"] != embassy_tag and moved.headers["ETag"] == read("embassy")[1]
    stale = client.post(f"{url}/transitions", headers=world.headers("embassy", **{"If-Match": embassy_tag}),
                        json={"to": "travel_planning",
                              "details": details_for(Stage.TRAVEL_DOCUMENTS, Stage.TRAVEL_PLANNING)})
    assert stale.status_code == 412, stale.get_json()
    # consent no longer covering embassies changes what the embassy sees, and so its ETag
    before = read("embassy")[1]
    changed = client.post(f"{url}/consent", json={"share_with": ["iom"]},
                          headers=world.headers("coordinator"))
    assert changed.status_code == 200, changed.get_json()
    doc, after = read("embassy")
    assert doc["person"] is None and after != before


def test_why_a_case_closed_and_where_the_person_lives_are_mgecs_alone(client, world, session):
    """The participant view leaves `closure_reason` out: so do a participant's timeline (with the
    rehabilitation's `placement`) and the `case.closed` event every participant receives."""
    import uuid

    import pytest

    from referral_api import events
    from referral_api.events import OutboxEvent

    case_id = open_case(client, world, "police", consent__share_with=[])
    add_participant(client, world, case_id, "embassy", "embassy")
    here = Stage.VERIFICATION
    for there in (Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT, Stage.ARRIVED, Stage.REHABILITATION):
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there
    transition(client, world, case_id, "closed", details={"closure_reason": "deceased"})
    staff = [e["details"] for e in _timeline(client, world, case_id, "coordinator")]
    assert {"placement": "shelter"} in staff and {"closure_reason": "deceased"} in staff
    for who in ("embassy", "police"):  # a participant, and the referrer
        shown = [e["details"] for e in _timeline(client, world, case_id, who)]
        assert len(shown) == len(staff), who  # MGEC's entries, all of them
        assert not any({"closure_reason", "placement"} & set(d) for d in shown), (who, shown)
        assert {"arrived_on", "entry_point"} <= set().union(*shown)  # the rest of the details stay
    closed = session.scalar(sa.select(OutboxEvent.payload).where(
        OutboxEvent.type == "case.closed", OutboxEvent.resource_id == uuid.UUID(case_id)))
    assert closed["stage"] == "closed" and "closure_reason" not in closed
    with pytest.raises(ValueError, match="closure_reason"):
        events.publish(session, events.EventType.CASE_CLOSED, resource_type="case",
                       resource_id=uuid.UUID(case_id), data={"closure_reason": "deceased"})
