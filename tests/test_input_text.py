"""Bad input is answered, never a 500 (issue 11, point 7), on SQLite and PostgreSQL alike: control
characters in any text field, query value or path id; JSON nested thousands deep; dates past 9999.

One rule (validators.control_character): no Unicode control character (C0, DEL, C1) and no lone
surrogate in any string; free text (narratives, notes, reasons, answers) may hold tab and line breaks.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.cases.models import CaseEvent, CaseService
from referral_api.events import OutboxEvent
from referral_api.referrals.models import Referral
from referral_api.webhooks.models import WebhookSubscription
from tests import oauth_helpers as h
from tests.case_helpers import open_case
from tests.referral_data import referral_body

NUL, BELL, ESC, DEL, C1 = "\x00", "\x07", "\x1b", "\x7f", "\x85"


@pytest.fixture
def scene(client, world):
    """A referral under review, another open for information, a case, a service of it."""
    submitted = client.post("/api/v1/referrals", json=referral_body(external_reference="T-1"),
                            headers=world.headers("police"))
    asking = client.post("/api/v1/referrals", json=referral_body(external_reference="T-2"),
                         headers=world.headers("police")).get_json()["id"]
    asked = client.post(f"/api/v1/referrals/{asking}/request-information", json={"questions": "Age?"},
                        headers=world.headers("coordinator"))
    assert asked.status_code == 200, asked.get_json()
    case = open_case(client, world, external_reference="T-3")
    service = client.post(f"/api/v1/cases/{case}/services", json={"kind": "medical", "note": "ok"},
                          headers=world.headers("coordinator"))
    assert service.status_code == 201, service.get_json()
    return {"referral": submitted.get_json()["id"], "asking": asking, "case": case,
            "service": service.get_json()["id"]}


def _counts(session):
    tables = (Referral, OutboxEvent, CaseEvent, CaseService, WebhookSubscription, AuditEvent)
    return [session.scalar(sa.select(sa.func.count()).select_from(t)) for t in tables]


# (who, method, path, body, the field named): every kind of text field of the POST and PATCH routes
WRITES = [
    ("police", "POST", "/api/v1/referrals", referral_body(person__family_name=f"Dorj{NUL}"),
     "person.family_name"),
    ("police", "POST", "/api/v1/referrals", referral_body(person__given_name="Bat\tbayar"),
     "person.given_name"),  # one line: not even a tab
    ("police", "POST", "/api/v1/referrals", referral_body(person__aliases=["Bat", f"B{ESC}"]),
     "person.aliases.1"),
    ("police", "POST", "/api/v1/referrals", referral_body(person__passport_number="E1234567\n"),
     "person.passport_number"),
    ("police", "POST", "/api/v1/referrals", referral_body(situation__narrative=f"Hotel work{BELL}"),
     "situation.narrative"),  # free text, but a bell is not a line break
    ("police", "POST", "/api/v1/referrals", referral_body(external_reference=f"MO{C1}1"),
     "external_reference"),
    ("police", "POST", "/api/v1/referrals", referral_body(consent__obtained_by=f"Officer{DEL}"),
     "consent.obtained_by"),
    ("police", "POST", "/api/v1/referrals/{asking}/information", {"answer": f"She is 24{NUL}"}, "answer"),
    ("coordinator", "POST", "/api/v1/referrals/{referral}/request-information",
     {"questions": f"How old{NUL}"}, "questions"),
    ("coordinator", "POST", "/api/v1/referrals/{referral}/reject",
     {"reason": "not_trafficking", "note": f"x{NUL}"}, "note"),
    ("coordinator", "POST", "/api/v1/referrals/{referral}/accept", {"case_id": f"CASE-2026-{NUL}"},
     "case_id"),
    ("police", "POST", "/api/v1/referrals/{referral}/withdraw", {"note": f"dup{NUL}"}, "note"),
    ("coordinator", "POST", "/api/v1/cases/{case}/transitions",
     {"to": "closed", "details": {"closure_reason": f"reintegrated{NUL}"}}, "details.closure_reason"),
    ("coordinator", "POST", "/api/v1/cases/{case}/transitions",
     {"to": "travel_documents", "note": f"n{NUL}"}, "note"),
    ("coordinator", "POST", "/api/v1/cases/{case}/hold", {"reason": f"Trial{NUL}"}, "reason"),
    ("coordinator", "POST", "/api/v1/cases/{case}/services", {"kind": "legal_aid", "note": f"a{NUL}"},
     "note"),
    ("coordinator", "PATCH", "/api/v1/services/{service}", {"note": f"b{NUL}"}, "note"),
    ("coordinator", "POST", "/api/v1/cases/{case}/erase", {"reason": f"erasure_request{NUL}"}, "reason"),
    ("police", "POST", "/api/v1/referrals", {**referral_body(), f"status{NUL}": "accepted"}, f"status{NUL}"),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "field"), WRITES,
                         ids=[f"{m} {p} {f}" for _w, m, p, _b, f in WRITES])
def test_a_control_character_in_a_text_field_is_a_422_naming_it_and_writes_nothing(
        client, world, session, scene, who, method, path, body, field):
    # a login is audited: the token first, then the counts
    headers = world.headers("admin" if path.endswith("/erase") else who)
    before = _counts(session)
    response = client.open(path.format(**scene), method=method, json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()
    assert "control characters" in " ".join(response.get_json()["errors"][field])
    assert _counts(session) == before


def test_free_text_keeps_tabs_and_line_breaks(client, world):
    narrative = "Recruited in Ulaanbaatar.\r\nMoved to Macau:\tno passport."
    created = client.post("/api/v1/referrals", headers=world.headers("police"),
                          json=referral_body(situation__narrative=narrative))
    assert created.status_code == 201, created.get_json()
    shown = client.get(f"/api/v1/referrals/{created.get_json()['id']}", headers=world.headers("coordinator"))
    assert shown.get_json()["situation"]["narrative"] == narrative


@pytest.mark.parametrize(("who", "path", "field"), [
    ("police", "/api/v1/cases/status?external_reference=MO%00-1", "external_reference"),
    ("admin", "/api/v1/audit?resource_id=x%00y", "resource_id"),
    ("admin", "/api/v1/audit?actor_id=%1b", "actor_id"),
])
def test_a_control_character_in_a_query_value_is_a_422_naming_it(client, world, who, path, field):
    response = client.get(path, headers=world.headers(who))
    assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/referrals/REF-2026-%00001"),
    ("GET", "/api/v1/cases/CASE-2026%00/events"),
    ("GET", "/api/v1/cases/%1b/status"),
    ("POST", "/api/v1/referrals/REF%00/accept"),
])
def test_a_control_character_in_a_path_id_is_a_404_naming_it(client, world, method, path):
    response = client.open(path, method=method, json={}, headers=world.headers("coordinator"))
    assert response.status_code == 404, response.get_json()
    assert response.mimetype == "application/problem+json" and "ref" in response.get_json()["errors"]


def test_a_client_id_with_a_nul_is_an_unknown_client_not_a_crash(client, world):
    basic = client.post("/oauth/token", headers=h.basic("cl_x\x00y", "secret"),
                        data={"grant_type": "client_credentials"})
    assert basic.status_code == 401 and basic.get_json()["error"] == "invalid_client"
    form = client.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "cl\x00",
                                             "client_secret": "x"})
    assert form.status_code == 400 and form.get_json()["error"] == "invalid_request"
    assert "client_id" in form.get_json()["errors"]


@pytest.mark.parametrize("body", ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000])
def test_json_nested_thousands_deep_is_a_400(client, world, session, body):
    headers = {**world.headers("police"), "Content-Type": "application/json"}  # its token issue is audited
    before = _counts(session)
    response = client.post("/api/v1/referrals", data=body, headers=headers)
    assert response.status_code == 400 and response.mimetype == "application/problem+json"
    assert "body" in response.get_json()["errors"]
    assert _counts(session) == before


def test_json_nested_past_the_limit_inside_an_open_field_is_a_400(client, world, scene):
    deep: dict = {}
    for _ in range(40):
        deep = {"x": deep}
    response = client.post(f"/api/v1/cases/{scene['case']}/transitions", headers=world.headers("coordinator"),
                           json={"to": "travel_documents", "details": deep})
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize("path", ["/api/v1/reports/summary", "/api/v1/reports/export.csv"])
def test_a_report_to_the_end_of_time_is_a_422_naming_to(client, world, path):
    response = client.get(f"{path}?to=9999-12-31", headers=world.headers("coordinator"))
    assert response.status_code == 422 and "to" in response.get_json()["errors"], response.get_json()
    fine = client.get(f"{path}?from=2026-01-01&to=2999-12-31", headers=world.headers("coordinator"))
    assert fine.status_code == 200


@pytest.mark.parametrize(("path", "field", "who"), [
    ("/api/v1/referrals?submitted_after=9999-12-31T23:00:00-05:00", "submitted_after", "coordinator"),
    ("/api/v1/audit?since=9999-12-31T23:00:00-05:00", "since", "admin"),
])
def test_a_moment_past_year_9999_in_utc_is_a_422(client, world, path, field, who):
    response = client.get(path, headers=world.headers(who))
    assert response.status_code == 422 and field in response.get_json()["errors"], response.get_json()


def _forged(values) -> str:
    import base64
    import json

    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize(("who", "path", "values"), [
    ("admin", "/api/v1/audit", [10 ** 30]),  # beyond the 64-bit seq column
    ("admin", "/api/v1/audit", [True]),
    ("coordinator", "/api/v1/organisations", ["Embassy\u0000"]),  # PostgreSQL text holds no NUL
    ("coordinator", "/api/v1/organisations", ["\u001b[2J"]),
])
def test_a_forged_cursor_is_a_422_naming_cursor(client, world, who, path, values):
    response = client.get(f"{path}?cursor={_forged(values)}", headers=world.headers(who))
    assert response.status_code == 422 and "cursor" in response.get_json()["errors"], response.get_json()
