"""What docs/security.md asks to audit and was not (issue 11, point 13): clients, people, tokens, exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import sqlalchemy as sa

from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

PACKAGE = Path(__file__).resolve().parent.parent / "referral_api"


def _events(session, action):
    query = sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
    return session.scalars(query).all()


def _said(events) -> str:
    return json.dumps([(e.details, e.resource_id, e.client_id, e.user_id) for e in events], default=str)


def test_every_audit_action_is_used_somewhere_in_the_code():
    code = "\n".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")
                     if p.name != "actions.py")
    unused = [m.name for m in AuditAction if not re.search(rf"\bAuditAction\.{m.name}\b", code)]
    assert unused == []


def test_client_commands_are_audited_without_their_secrets(run_cli, session):
    org = h.organisation(session)
    created = run_cli("clients", "create", "--org", str(org.id), "--name", "Seoul embassy",
                      "--scopes", "referrals:submit", "--json")
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    rotated = json.loads(run_cli("clients", "rotate-secret", body["client_id"], "--json").output)
    assert run_cli("clients", "revoke", body["client_id"]).exit_code == 0
    events = [*_events(session, "auth:client:create"), *_events(session, "auth:client:rotate_secret"),
              *_events(session, "auth:client:revoke")]
    assert [e.action for e in events] == ["auth:client:create", "auth:client:rotate_secret",
                                          "auth:client:revoke"]
    assert {e.details["client_id"] for e in events} == {body["client_id"]}
    assert body["client_secret"] not in _said(events) and rotated["client_secret"] not in _said(events)


def test_user_creation_deactivation_and_totp_enrolment_are_audited_without_personal_data(run_cli, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    created = run_cli("users", "create", "--org", str(mgec.id), "--email", "naran@mgec.example",
                      "--role", "mgec_coordinator", "--name", "Naran Bat", "--json", input=h.PASSWORD + "\n")
    assert created.exit_code == 0, created.output
    user_id = json.loads(created.output)["id"]
    assert run_cli("users", "reset-totp", user_id).exit_code == 0
    assert run_cli("users", "deactivate", user_id).exit_code == 0
    events = [*_events(session, "auth:user:create"), *_events(session, "auth:totp:enrol"),
              *_events(session, "auth:user:deactivate")]
    assert [e.action for e in events] == ["auth:user:create", "auth:totp:enrol", "auth:totp:enrol",
                                          "auth:user:deactivate"]
    assert {e.resource_id for e in events} == {user_id}
    said = _said(events)
    assert "naran" not in said.lower() and "Bat" not in said and "otpauth" not in said


def test_failed_token_requests_are_audited_at_most_once_a_minute_per_client_and_address(client, session):
    c, _secret = h.secret_client(session, h.organisation(session))
    for address in ("203.0.113.7", "203.0.113.8"):
        for _ in range(4):
            response = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                   headers=h.basic(c.client_id, "guessed-secret"),
                                   environ_base={"REMOTE_ADDR": address})
            assert response.status_code == 401
    events = _events(session, "auth:token:deny")
    assert len(events) == 2
    assert {e.client_id for e in events} == {c.client_id} and {e.outcome.value for e in events} == {"denied"}
    said = _said(events)
    assert "guessed-secret" not in said and "203.0.113" not in said


def test_tokens_issued_refreshed_revoked_and_introspected_are_audited(client, session):
    c, secret = h.secret_client(session, h.organisation(session))
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=h.basic(c.client_id, secret)).get_json()["access_token"]
    client.post("/oauth/introspect", data={"token": token}, headers=h.basic(c.client_id, secret))
    client.post("/oauth/revoke", data={"token": token}, headers=h.basic(c.client_id, secret))
    query = sa.select(AuditEvent.action).where(AuditEvent.client_id == c.client_id).order_by(AuditEvent.seq)
    actions = session.scalars(query).all()
    assert actions == ["auth:token:issue", "auth:token:introspect", "auth:token:revoke"]
    assert token not in _said(_events(session, "auth:token:issue"))


def test_a_ctdc_export_is_audited(client, world, session):
    answer = client.get("/api/v1/reports/export.csv?from=2025-01-01&to=2025-12-31",
                        headers=world.headers("coordinator"))
    assert answer.status_code == 200
    [event] = _events(session, "reports:report:export")
    assert event.user_id is not None and event.outcome.value == "success"
    assert event.details["date_from"] == "2025-01-01" and event.details["date_to"] == "2025-12-31"
    assert event.details["rows"] == answer.get_data(as_text=True).count("\n") - 1
