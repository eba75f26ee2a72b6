"""The contract validates (openapi-spec-validator, prance, Redocly), its OpenAPI 3.1 twin is the
conversion of the Swagger 2.0 document, every operation declares the scope its route enforces, every
error references problem details, and operation ids read as unique verbs."""

from __future__ import annotations

import json
import re
import secrets
import uuid

import pytest

from referral_api import contract
from referral_api.access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, Role
from referral_api.auth.models import Token, secret_hash
from tests import oauth_helpers as h
from tests.openapi_tools import OPENAPI, SWAGGER, convert, redocly_lint

VERBS = {"list", "get", "submit", "create", "add", "record", "update", "delete", "remove", "accept",
         "reject", "review", "withdraw", "provide", "request", "hold", "resume", "move", "erase",
         "download", "export", "verify", "check", "ping", "redeliver", "rotate", "revoke", "introspect"}
HTTP_METHODS = ("get", "put", "post", "patch", "delete")


def _operations(spec):
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method]


def _load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_the_swagger_document_passes_openapi_spec_validator_and_prance():
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV2SpecValidator
    from prance import ResolvingParser

    validate(_load(SWAGGER), cls=OpenAPIV2SpecValidator)
    parser = ResolvingParser(str(SWAGGER), backend="openapi-spec-validator", strict=True)
    assert parser.specification["swagger"] == "2.0"


def test_the_openapi_31_document_passes_openapi_spec_validator():
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV31SpecValidator

    spec = _load(OPENAPI)
    assert spec["openapi"].startswith("3.1.")
    validate(spec, cls=OpenAPIV31SpecValidator)


def test_the_openapi_31_document_is_the_conversion_of_the_swagger_document(tmp_path):
    fresh = tmp_path / "openapi.json"
    convert(SWAGGER, fresh)
    assert OPENAPI.read_text(encoding="utf-8") == fresh.read_text(encoding="utf-8"), (
        "openapi/openapi.json is stale: run `make openapi` and commit the result"
    )


@pytest.mark.parametrize("document", [SWAGGER, OPENAPI], ids=["swagger2", "openapi31"])
def test_redocly_lint_finds_no_error(document):
    result = redocly_lint(document)
    errors = [line for line in result.stdout.splitlines() if re.match(r"\s*\d+:\d+\s+error\s", line)]
    assert result.returncode == 0 and errors == [], result.stdout + result.stderr


def test_operation_ids_are_unique_lower_camel_verbs():
    ids = [op["operationId"] for _m, _p, op in _operations(_load(SWAGGER))]
    assert len(ids) == len(set(ids))
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", op_id), op_id
        assert re.match(r"[a-z]+", op_id).group(0) in VERBS, op_id
    assert {"submitReferral", "getCaseStatus", "listReferrals", "getReferral", "getToken"} <= set(ids)


def test_every_error_answer_references_problem_details():
    spec = _load(SWAGGER)
    problem = spec["definitions"]["Problem"]
    assert {"type", "title", "status", "detail", "instance"} <= set(problem["properties"])
    assert "errors" in spec["definitions"]["ValidationProblem"]["required"]
    for method, path, op in _operations(spec):
        for status, answer in op["responses"].items():
            if status[0] not in "45":
                continue
            ref = answer.get("schema", {}).get("$ref")
            if path.startswith("/oauth/") and status in {"400", "401"}:
                assert ref == "#/definitions/OAuthError"  # RFC 6749's own error body, not problem+json
            elif status == "422":
                assert ref == "#/definitions/ValidationProblem", (method, path)
            else:
                assert ref == "#/definitions/Problem", (method, path, status)


def test_the_31_document_keeps_the_problems_and_the_oauth_flows():
    spec = _load(OPENAPI)
    schemes = spec["components"]["securitySchemes"]
    flows = {name: s["flows"] for name, s in schemes.items() if s["type"] == "oauth2"}
    assert set(flows[contract.CLIENT_CREDENTIALS]) == {"clientCredentials"}
    assert set(flows[contract.AUTHORIZATION_CODE]) == {"authorizationCode"}
    bad = spec["paths"]["/api/v1/referrals"]["post"]["responses"]["422"]["content"]
    assert bad["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/ValidationProblem"}


def test_only_person_scopes_are_offered_through_the_authorization_code_alone():
    schemes = _load(SWAGGER)["securityDefinitions"]
    assert schemes[contract.CLIENT_CREDENTIALS]["flow"] == "application"
    assert schemes[contract.AUTHORIZATION_CODE]["flow"] == "accessCode"
    assert set(schemes[contract.CLIENT_CREDENTIALS]["scopes"]) == CLIENT_CREDENTIALS_SCOPES
    assert set(schemes[contract.AUTHORIZATION_CODE]["scopes"]) == ALL_SCOPES


def _declared(op) -> set[str]:
    requirements = op.get("security", [])
    return {scope for requirement in requirements for scopes in requirement.values() for scope in scopes}


def _token(session, client, user, scopes) -> dict[str, str]:
    raw = secrets.token_urlsafe(32)
    session.add(Token(access_token_hash=secret_hash(raw), client_pk=client.id, user_id=user.id,
                      scope=" ".join(sorted(scopes)), expires_in=900))
    session.commit()
    return h.bearer(raw)


def _url(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda _m: str(uuid.uuid4()), path)


def test_each_operation_declares_the_scopes_its_route_enforces(client, session):
    """With every scope but the declared ones: 403 insufficient_scope; with any one declared scope,
    the scope check lets the call through (whatever the record then answers)."""
    mgec = h.organisation(session, h.OrganisationKind.MGEC)
    app_client, _secret = h.secret_client(session, mgec, scopes=" ".join(sorted(ALL_SCOPES)),
                                          grant_types="authorization_code", redirect_uris=[h.REDIRECT_URI])
    admin, _totp = h.person(session, mgec, Role.MGEC_ADMIN)
    checked = 0
    for method, path, op in _operations(_load(SWAGGER)):
        if not path.startswith("/api/v1/"):
            continue
        declared = _declared(op)
        assert declared, f"{method.upper()} {path} declares no scope"
        call = getattr(client, method)
        refused = call(_url(path), headers=_token(session, app_client, admin, ALL_SCOPES - declared))
        refusal = (refused.status_code, refused.get_json()["error"])
        assert refusal == (403, "insufficient_scope"), (method, path)
        for scope in declared:
            answer = call(_url(path), headers=_token(session, app_client, admin, {scope}))
            body = answer.get_json(silent=True) or {}
            assert body.get("error") != "insufficient_scope", (method, path, scope)
            assert answer.status_code != 401, (method, path, scope)
        checked += 1
    assert checked >= 50


def test_the_documented_problems_are_what_the_api_answers(client, world):
    """A real 404, 403 and 422 validate against the document's Problem and ValidationProblem."""
    import jsonschema

    definitions = _load(SWAGGER)["definitions"]
    headers = world.headers("police")
    missing = client.get(f"/api/v1/referrals/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404
    jsonschema.validate(missing.get_json(), definitions["Problem"])
    forbidden = client.get("/api/v1/audit", headers=headers)
    assert forbidden.status_code == 403
    jsonschema.validate(forbidden.get_json(), definitions["Problem"])
    invalid = client.post("/api/v1/referrals", json={"source": "police"}, headers=headers)
    assert invalid.status_code == 422
    jsonschema.validate(invalid.get_json(), definitions["ValidationProblem"])
    with pytest.raises(jsonschema.ValidationError):  # the schema holds: a problem without errors is no 422's
        jsonschema.validate(missing.get_json(), definitions["ValidationProblem"])


def test_the_served_document_is_the_committed_one(client):
    """What Swagger UI and partners fetch at /swagger.json is the document the validators passed."""
    served = client.get("/swagger.json")
    assert served.status_code == 200
    assert served.get_json() == _load(SWAGGER)
