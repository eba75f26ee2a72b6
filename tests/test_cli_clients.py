"""`clients create` refuses scopes a client can never use; `--json` failures are one JSON object on
stdout; `clients list` shows scopes and grant types; `clients rotate-secret` ends the old secret's
tokens."""

from __future__ import annotations

import json

import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.auth.models import Client
from tests import oauth_helpers as h


def _json_failure(result) -> dict:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # one JSON object, nothing else on stdout
    return json.loads(lines[0])


def test_person_only_scopes_are_refused_for_a_client_credentials_client(run_cli, session):
    org = h.organisation(session)
    for scope in ("referrals:review", "audit:read", "admin"):
        result = run_cli("clients", "create", "--org", str(org.id), "--name", "x", "--scopes",
                         f"referrals:read {scope}", "--json")
        body = _json_failure(result)
        assert body["error"] == "invalid_payload"
        assert scope in body["errors"]["scopes"][0] and "authorization_code" in body["errors"]["scopes"][0]
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 0
    # with the authorization_code grant they are a person's scopes, and allowed
    ok = run_cli("clients", "create", "--org", str(org.id), "--name", "people", "--scopes",
                 "referrals:read referrals:review", "--grant-types", "authorization_code refresh_token",
                 "--redirect-uri", h.REDIRECT_URI, "--json")
    assert ok.exit_code == 0, ok.output


def test_comma_separated_scopes_get_a_hint(run_cli, session):
    org = h.organisation(session)
    result = run_cli("clients", "create", "--org", str(org.id), "--name", "x", "--scopes",
                     "referrals:read,referrals:submit")
    assert result.exit_code == 1
    assert 'separate scopes with spaces, not commas: "referrals:read referrals:submit"' in result.output


def test_json_errors_are_one_object_on_stdout_for_every_kind_of_failure(run_cli, session):
    # a DomainError inside a command
    missing = _json_failure(run_cli("clients", "revoke", "cl_nope", "--json"))
    assert missing["error"] == "not_found" and "cl_nope" in missing["message"]
    # a usage error before the command runs (a required option missing)
    usage = _json_failure(run_cli("clients", "create", "--name", "x", "--json"))
    assert usage["error"] == "usage_error" and "--org" in usage["message"]
    # a bad option value
    bad = _json_failure(run_cli("clients", "create", "--org", "x", "--name", "x", "--scopes", "a",
                                "--auth-method", "password", "--json"))
    assert bad["error"] == "usage_error"
    # another part's command, same handling
    orgs = _json_failure(run_cli("orgs", "suspend", "no such org", "--json"))
    assert orgs["error"] == "not_found"
    # without --json, the plain message stays
    plain = run_cli("clients", "revoke", "cl_nope")
    assert plain.exit_code == 1 and plain.output.startswith("Error:")


def test_clients_list_shows_scopes_and_grant_types(run_cli, session):
    org = h.organisation(session)
    created = json.loads(run_cli("clients", "create", "--org", str(org.id), "--name", "listed", "--scopes",
                                 "referrals:submit cases:read", "--require-dpop", "--json").output)
    text = run_cli("clients", "list", "--org", str(org.id)).output
    assert created["client_id"] in text
    assert "scopes: cases:read referrals:submit" in text
    assert "grant types: client_credentials" in text
    assert "DPoP required" in text


def test_rotate_secret_ends_the_tokens_got_with_the_old_secret(client, session, run_cli):
    """A secret is rotated because it leaked; whoever holds it may already hold tokens (as after
    `users reset-totp` or a password reset, they are revoked)."""
    org = h.organisation(session)
    c, old_secret = h.secret_client(session, org)
    other, other_secret = h.secret_client(session, org)
    grant = {"grant_type": "client_credentials"}
    token = client.post("/oauth/token", data=grant, headers=h.basic(c.client_id, old_secret)).get_json()
    kept = client.post("/oauth/token", data=grant, headers=h.basic(other.client_id, other_secret)).get_json()
    assert client.get("/api/v1/me", headers=h.bearer(token["access_token"])).status_code == 200
    rotated = run_cli("clients", "rotate-secret", c.client_id, "--json")
    assert rotated.exit_code == 0, rotated.output
    refused = client.post("/oauth/token", data=grant, headers=h.basic(c.client_id, old_secret))
    assert refused.status_code == 401
    assert client.get("/api/v1/me", headers=h.bearer(token["access_token"])).status_code == 401
    assert client.get("/api/v1/me", headers=h.bearer(kept["access_token"])).status_code == 200  # only its own
    new_secret = json.loads(rotated.stdout)["client_secret"]
    fresh = client.post("/oauth/token", data=grant, headers=h.basic(c.client_id, new_secret)).get_json()
    assert client.get("/api/v1/me", headers=h.bearer(fresh["access_token"])).status_code == 200
    events = session.scalars(sa.select(AuditEvent)
                             .where(AuditEvent.action == "auth:client:rotate_secret")).all()
    assert [e.details["client_id"] for e in events] == [c.client_id]


def test_rotate_secret_help_says_the_tokens_are_revoked(run_cli):
    assert "tokens" in run_cli("clients", "rotate-secret", "--help").output
