"""Secrets at rest (hashes only), and the `clients`, `users` and `demo seed` commands."""

from __future__ import annotations

import json

import pyotp
import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.auth.models import Client, User
from referral_api.organisations.models import OrganisationKind
from tests import oauth_helpers as h

TABLES = ("oauth_clients", "oauth_tokens", "oauth_authorization_codes", "users")


def _dump(session) -> str:
    """Every value of every auth table, read with raw SQL, as one string."""
    text = []
    for table in TABLES:
        for row in session.execute(sa.text(f"SELECT * FROM {table}")):
            text.extend(str(v) for v in row)
    return "\n".join(text)


def _one_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return json.loads(lines[0])


def test_no_plaintext_secret_token_or_code_in_the_database(client, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    c, secret = h.login_client(session, mgec)
    user, totp = h.person(session, mgec, Role.MGEC_COORDINATOR)
    verifier, challenge = h.pkce_pair()
    response = h.login_with_test_client(client, h.authorize_params(c.client_id, challenge),
                                        email=user.email, totp_code=totp.now())
    code = h.code_from(response.headers["Location"])["code"]
    tokens = client.post("/oauth/token", headers=h.basic(c.client_id, secret), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": h.REDIRECT_URI,
        "code_verifier": verifier}).get_json()
    cc, cc_secret = h.secret_client(session, mgec, scopes="referrals:read")
    cc_token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=h.basic(cc.client_id, cc_secret)).get_json()["access_token"]

    stored = _dump(session)
    assert c.client_id in stored  # the read itself sees the tables' contents
    for plaintext in (secret, cc_secret, code, tokens["access_token"], tokens["refresh_token"], cc_token,
                      h.PASSWORD):
        assert plaintext not in stored


def test_clients_create_list_rotate_revoke(run_cli, session, client):
    org = h.organisation(session, OrganisationKind.EMBASSY, name="Embassy of Mongolia in Seoul")
    created = run_cli("clients", "create", "--org", org.name, "--name", "Seoul case system",
                      "--scopes", "referrals:submit referrals:read", "--json")
    assert created.exit_code == 0, created.output
    body = json.loads(created.output)
    assert body["client_secret"] and body["scopes"] == ["referrals:read", "referrals:submit"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"

    listed = json.loads(run_cli("clients", "list", "--json").output)["items"]
    assert [c["client_id"] for c in listed] == [body["client_id"]]
    assert "client_secret" not in listed[0]

    rotated = json.loads(run_cli("clients", "rotate-secret", body["client_id"], "--json").output)
    assert rotated["client_secret"] != body["client_secret"]
    grant = {"grant_type": "client_credentials"}
    old = client.post("/oauth/token", data=grant, headers=h.basic(body["client_id"], body["client_secret"]))
    assert old.get_json()["error"] == "invalid_client"
    new_auth = h.basic(body["client_id"], rotated["client_secret"])
    new = client.post("/oauth/token", data=grant, headers=new_auth)
    assert new.status_code == 200

    revoked = run_cli("clients", "revoke", body["client_id"], "--json")
    assert json.loads(revoked.output)["revoked"] is True
    again = client.post("/oauth/token", data=grant, headers=new_auth)
    assert again.get_json()["error"] == "invalid_client"


def test_clients_create_private_key_jwt_from_a_jwks_file(run_cli, session, tmp_path):
    org = h.organisation(session)
    key = h.ec_key()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    result = run_cli("clients", "create", "--org", str(org.id), "--name", "jwt", "--scopes", "referrals:read",
                     "--auth-method", "private_key_jwt", "--jwks-file", jwks, "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "private_key_jwt"
    assert session.scalar(sa.select(Client.client_secret_hash).where(Client.client_id == body["client_id"])) \
        is None
    # A private key in the file is refused.
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=True)]}))
    refused = run_cli("clients", "create", "--org", str(org.id), "--name", "jwt2", "--scopes",
                      "referrals:read", "--auth-method", "private_key_jwt", "--jwks-file", jwks)
    assert refused.exit_code == 1 and "private key" in refused.output


@pytest.mark.parametrize(("keys", "message"), [
    ([{"kty": "EC", "x": "AAAA", "y": "AAAA"}], "'crv' is required"),  # joserfc's KeyParameterError
    ([{"kty": "EC", "crv": "P-256", "x": 1, "y": 1}], "'x' must be a str"),
    ([], "No keys"),
    ([{"kty": "EC", "crv": "P-999", "x": "AAAA", "y": "AAAA"}], "KeyError"),
])
def test_clients_create_refuses_a_malformed_jwks_naming_it(run_cli, session, tmp_path, keys, message):
    org = h.organisation(session)
    jwks = tmp_path / "keys.json"
    jwks.write_text(json.dumps({"keys": keys}))
    result = run_cli("clients", "create", "--org", str(org.id), "--name", "jwt", "--scopes",
                     "referrals:submit", "--auth-method", "private_key_jwt", "--jwks-file", jwks, "--json")
    assert result.exit_code == 1, result.output
    body = _one_json(result)
    assert body["error"] == "invalid_payload" and message in body["errors"]["jwks"][0], body
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 0


def test_clients_create_refuses_a_jwks_file_that_is_not_utf8(run_cli, session, tmp_path):
    org = h.organisation(session)
    jwks = tmp_path / "keys.der"
    jwks.write_bytes(b"\xff\xfe\x00binary")
    args = ["clients", "create", "--org", str(org.id), "--name", "jwt", "--scopes", "referrals:submit",
            "--auth-method", "private_key_jwt", "--jwks-file", jwks]
    body = _one_json(run_cli(*args, "--json"))
    assert body["error"] == "invalid_payload" and "not UTF-8" in body["errors"]["jwks"][0], body
    plain = run_cli(*args)
    assert plain.exit_code == 1 and plain.output.startswith("Error:") and "Traceback" not in plain.output


def test_clients_create_refuses_bad_values(run_cli, session):
    org = h.organisation(session)
    for args, message in (
        (["--scopes", "referrals:everything"], "unknown scopes"),
        (["--scopes", "referrals:read", "--grant-types", "password"], "unsupported grant types"),
        (["--scopes", "referrals:read", "--grant-types", "authorization_code"], "redirect URI"),
        (["--scopes", "referrals:read", "--auth-method", "private_key_jwt"], "JWKS"),
    ):
        result = run_cli("clients", "create", "--org", str(org.id), "--name", "x", *args)
        assert result.exit_code == 1 and message in result.output, result.output
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 0


def test_users_create_reads_the_password_from_stdin_and_prints_the_totp_uri_once(run_cli, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    result = run_cli("users", "create", "--org", str(mgec.id), "--email", "Bolor@MGEC.example",
                     "--role", "mgec_coordinator", "--name", "Bolor", "--json", input=h.PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["email"] == "bolor@mgec.example" and body["role"] == "mgec_coordinator"
    assert body["totp_uri"].startswith("otpauth://totp/")
    assert h.PASSWORD not in result.output
    user = session.scalar(sa.select(User))
    assert user.password_hash.startswith("$argon2")
    assert pyotp.parse_uri(body["totp_uri"]).secret == user.totp_secret

    listed = run_cli("users", "reset-totp", "bolor@mgec.example", "--json")
    new_uri = json.loads(listed.output)["totp_uri"]
    assert new_uri != body["totp_uri"]

    deactivated = json.loads(run_cli("users", "deactivate", str(user.id), "--json").output)
    assert deactivated["active"] is False


def test_users_create_refuses_short_passwords_and_wrong_roles(run_cli, session):
    mgec = h.organisation(session, OrganisationKind.MGEC)
    partner = h.organisation(session, OrganisationKind.NGO)
    short = run_cli("users", "create", "--org", str(mgec.id), "--email", "a@b.example", "--role",
                    "mgec_admin", input="short\n")
    assert short.exit_code == 1 and "password" in short.output
    wrong = run_cli("users", "create", "--org", str(partner.id), "--email", "a@b.example", "--role",
                    "mgec_coordinator", input=h.PASSWORD + "\n")
    assert wrong.exit_code == 1 and "role" in wrong.output
    officer = run_cli("users", "create", "--org", str(partner.id), "--email", "a@b.example", "--role",
                      "partner_officer", "--json", input=h.PASSWORD + "\n")
    assert officer.exit_code == 0 and "totp_uri" not in json.loads(officer.output)
    no_totp = run_cli("users", "reset-totp", "a@b.example")
    assert no_totp.exit_code == 1


BAD_NAMES = [("a" * 201, "200"), ("Seoul\x1b[2Jsystem", "U+001B"), ("two\nlines", "U+000A")]


@pytest.mark.parametrize(("name", "message"), [*BAD_NAMES, ("", "between 1 and 200")])
def test_clients_create_refuses_a_name_too_long_empty_or_with_a_control_character(run_cli, session, name,
                                                                                   message):
    """Client names are String(200) (PostgreSQL answered a long one with a DataError traceback, SQLite
    stored it), and one line as `orgs create`'s are."""
    org = h.organisation(session, OrganisationKind.POLICE)
    args = ["clients", "create", "--org", str(org.id), "--name", name, "--scopes", "referrals:submit"]
    result = run_cli(*args, "--json")
    assert result.exit_code == 1, result.output
    body = _one_json(result)
    assert body["error"] == "invalid_payload" and message in body["errors"]["name"][0], body
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 0
    plain = run_cli(*args)
    assert plain.exit_code == 1 and plain.output.startswith("Error:") and "name: " in plain.output


@pytest.mark.parametrize(("name", "message"), BAD_NAMES)
def test_users_create_refuses_a_name_too_long_or_with_a_control_character(run_cli, session, name, message):
    org = h.organisation(session, OrganisationKind.POLICE)
    result = run_cli("users", "create", "--org", str(org.id), "--email", "saran@example.org",
                     "--role", Role.PARTNER_OFFICER.value, "--name", name, "--json", input=h.PASSWORD + "\n")
    assert result.exit_code == 1, result.output
    body = _one_json(result)
    assert body["error"] == "invalid_payload" and message in body["errors"]["name"][0], body
    assert session.scalar(sa.select(sa.func.count()).select_from(User)) == 0
    # a person's name stays optional, and 200 characters fit
    for email, ok_name in (("a@example.org", ""), ("b@example.org", "Сарангэрэл " * 18 + "Б" * 2)):
        made = run_cli("users", "create", "--org", str(org.id), "--email", email, "--role",
                       Role.PARTNER_OFFICER.value, "--name", ok_name, "--json", input=h.PASSWORD + "\n")
        assert made.exit_code == 0 and json.loads(made.stdout)["name"] == ok_name, made.output


def test_demo_seed_creates_clients_and_a_coordinator_and_shows_secrets_once(run_cli, session, client):
    first = run_cli("demo", "seed", "--json")
    assert first.exit_code == 0, first.output
    body = json.loads(first.output)
    assert set(body["clients"]) == {"mgec", "embassy", "police", "iom", "ngo"}
    assert all(c["client_secret"] for c in body["clients"].values())
    coordinator = body["coordinator"]
    assert coordinator["password"] and coordinator["totp_uri"]

    # The printed credentials work.
    embassy = body["clients"]["embassy"]
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers=h.basic(embassy["client_id"], embassy["client_secret"])).get_json()
    assert "referrals:submit" in token["scope"]
    mgec = body["clients"]["mgec"]
    _verifier, challenge = h.pkce_pair()
    totp = pyotp.parse_uri(coordinator["totp_uri"])
    login = h.login_with_test_client(
        client, h.authorize_params(mgec["client_id"], challenge),
        email=coordinator["email"], password=coordinator["password"], totp_code=totp.now())
    assert login.status_code == 302 and "code=" in login.headers["Location"]

    second = json.loads(run_cli("demo", "seed", "--json").output)
    assert {k: c["client_id"] for k, c in second["clients"].items()} == \
        {k: c["client_id"] for k, c in body["clients"].items()}
    assert all(c["client_secret"] is None for c in second["clients"].values())
    assert second["coordinator"]["password"] is None and second["coordinator"]["totp_uri"] is None
    # one per organisation, the console's own client and the docs client (the same on a second run)
    assert session.scalar(sa.select(sa.func.count()).select_from(Client)) == 7
    assert second["docs"]["client_id"] == body["docs"]["client_id"]
