"""Cases for tests, made as partners and MGEC make them: a referral submitted over HTTP, then accepted."""

from __future__ import annotations

from datetime import UTC, datetime

from referral_api.cases.stages import MOVES, Stage
from tests.referral_data import referral_body

TODAY = datetime.now(UTC).date().isoformat()
# One valid value of every detail of docs/domain.md's stage table.
SAMPLE_DETAILS = {
    "verified_on": TODAY,
    "method": "passport",
    "document_type": "emergency_travel_document",
    "issued_on": TODAY,
    "route": "air",
    "departed_on": TODAY,
    "departure_place": "Incheon International Airport",
    "entry_point": "chinggis_khaan_airport",
    "arrived_on": TODAY,
    "placement": "shelter",
    "closure_reason": "reintegrated",
}
STATUS_KEYS = {"id", "reference", "stage", "stage_since", "on_hold", "key_dates"}
KEY_DATES = {
    "referred_at",
    "accepted_at",
    "travel_document_issued_on",
    "departed_on",
    "arrived_on",
    "closed_at",
}


def details_for(source: Stage, target: Stage) -> dict:
    """The details the move source → target records, all valid."""
    move = MOVES[(source, target)]
    return {name: SAMPLE_DETAILS[name] for name in move.details().fields}


def open_case(client, world, who="police", **overrides) -> str:
    """Submit a referral as `who` and accept it as a coordinator; the new case's id."""
    submitted = client.post("/api/v1/referrals", json=referral_body(**overrides), headers=world.headers(who))
    assert submitted.status_code == 201, submitted.get_json()
    accepted = client.post(
        f"/api/v1/referrals/{submitted.get_json()['id']}/accept",
        json={},
        headers=world.headers("coordinator"),
    )
    assert accepted.status_code == 200, accepted.get_json()
    return accepted.get_json()["case_id"]


def add_participant(client, world, case_id: str, org: str, role: str, who="coordinator"):
    response = client.post(
        f"/api/v1/cases/{case_id}/participants",
        json={"organisation_id": str(world.orgs[org].id), "role": role},
        headers=world.headers(who),
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def transition(client, world, case_id: str, to: str, who="coordinator", status=200, **body):
    response = client.post(
        f"/api/v1/cases/{case_id}/transitions", json={"to": to, **body}, headers=world.headers(who)
    )
    assert response.status_code == status, response.get_json()
    return response.get_json()
