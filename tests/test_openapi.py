"""The committed OpenAPI document is what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from referral_api.cli import openapi_document
from tests.conftest import _cli_runner

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "swagger.json"


def test_committed_openapi_matches_the_code(base_app):
    generated = openapi_document(base_app)
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == generated, (
        "openapi/swagger.json is stale: run `referral-api openapi export` and commit the result"
    )


def test_every_operation_is_documented(base_app):
    spec = json.loads(openapi_document(base_app))
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method == "parameters":
                continue
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
            assert op.get("responses"), f"{method.upper()} {path} documents no response"


def test_export_command_writes_the_document(base_app, tmp_path):
    out = tmp_path / "swagger.json"
    result = _cli_runner(base_app)("openapi", "export", "--output", out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == openapi_document(base_app)


def test_the_oauth_endpoints_are_described_with_form_bodies_and_the_rfc6749_error(base_app):
    spec = json.loads(openapi_document(base_app))
    forms = {
        "/oauth/token": {"grant_type", "scope", "code", "redirect_uri", "code_verifier", "refresh_token"},
        "/oauth/revoke": {"token", "token_type_hint"},
        "/oauth/introspect": {"token", "token_type_hint"},
    }
    client_auth = {"client_id", "client_secret", "client_assertion_type", "client_assertion"}
    for path, fields in forms.items():
        op = spec["paths"][path]["post"]
        assert op["consumes"] == ["application/x-www-form-urlencoded"]
        params = {p["name"]: p for p in op["parameters"]}
        assert {p["in"] for p in params.values()} == {"formData"}
        assert fields | client_auth == set(params)
        for status in ("400", "401"):
            assert op["responses"][status]["schema"] == {"$ref": "#/definitions/OAuthError"}
        assert {"client_basic": []} in op["security"]
    grant = next(p for p in spec["paths"]["/oauth/token"]["post"]["parameters"] if p["name"] == "grant_type")
    assert grant["enum"] == ["client_credentials", "authorization_code", "refresh_token"]
    assert grant["required"] is True
    error = spec["definitions"]["OAuthError"]
    assert error["required"] == ["error"]
    assert set(error["properties"]) == {"error", "error_description", "error_uri"}
    assert set(spec["definitions"]["OAuthToken"]["required"]) == {"access_token", "token_type", "expires_in"}
    assert spec["securityDefinitions"]["client_basic"]["type"] == "basic"


def test_the_documented_token_answer_matches_the_real_one(client, session):
    """The document's OAuthToken and OAuthError are what /oauth/token really answers."""
    import jsonschema

    from tests import oauth_helpers as h

    spec = json.loads(COMMITTED.read_text(encoding="utf-8"))
    c, secret = h.secret_client(session, h.organisation(session))
    form = {"grant_type": "client_credentials"}
    ok = client.post("/oauth/token", data=form, headers=h.basic(c.client_id, secret))
    jsonschema.validate(ok.get_json(), spec["definitions"]["OAuthToken"])
    bad = client.post("/oauth/token", data=form, headers=h.basic(c.client_id, "x"))
    assert bad.status_code == 401
    jsonschema.validate(bad.get_json(), spec["definitions"]["OAuthError"])
