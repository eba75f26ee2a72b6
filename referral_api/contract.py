"""The OpenAPI contract beyond what flask-restx writes: OAuth 2.0 security, problem details, verb ids.

- Security: two OAuth 2.0 schemes, client credentials (`application`) for partners' systems and
  authorization code with PKCE (`accessCode`) for people. Each operation's requirement is read from
  the route itself (the `__required_scopes__` that `access.require_scope` leaves on it), never
  written by hand: a scope a person only may hold is offered through the authorization code only.
- Errors: every 4xx/5xx answer of the API references `Problem` (RFC 9457), a 422 `ValidationProblem`
  (with `errors`, field -> messages).
- Operation ids read as verbs (`submitReferral`, `getCaseStatus`); a route missing from
  OPERATION_IDS keeps flask-restx's `post_x_y` id, which tests/test_openapi.py refuses.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from flask_restx import Api
from flask_restx.swagger import extract_path

from .access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, Scope

CLIENT_CREDENTIALS = "oauth2_client_credentials"
AUTHORIZATION_CODE = "oauth2_authorization_code"
TOKEN_URL = "/oauth/token"  # noqa: S105  (a path, not a secret)
AUTHORIZE_URL = "/oauth/authorize"
METHODS = ("get", "put", "post", "patch", "delete")

SCOPE_TEXTS: dict[str, str] = {
    Scope.REFERRALS_SUBMIT: "Submit referrals, answer requests for information, withdraw",
    Scope.REFERRALS_READ: "Read the referrals you may see",
    Scope.REFERRALS_REVIEW: "Review, accept and reject referrals (MGEC people only)",
    Scope.CASES_READ: "Read the cases you take part in",
    Scope.CASES_STATUS: "Read a case's status (also by your own external reference)",
    Scope.CASES_UPDATE: "Move cases, record services, add documents",
    Scope.WEBHOOKS_MANAGE: "Manage your organisation's webhook subscriptions",
    Scope.REPORTS_READ: "Aggregate reports and the CTDC export",
    Scope.AUDIT_READ: "Read and verify the audit trail (MGEC people only)",
    Scope.ADMIN: "Administer organisations, shelters, erasure (MGEC people only)",
}

OPERATION_IDS: dict[tuple[str, str], str] = {
    ("get", "/api/v1/audit"): "listAuditEvents",
    ("get", "/api/v1/audit/verify"): "verifyAuditChain",
    ("get", "/api/v1/cases"): "listCases",
    ("get", "/api/v1/cases/status"): "getCaseStatusByExternalReference",
    ("get", "/api/v1/cases/{ref}"): "getCase",
    ("post", "/api/v1/cases/{ref}/consent"): "updateCaseConsent",
    ("get", "/api/v1/cases/{ref}/documents"): "listCaseDocuments",
    ("post", "/api/v1/cases/{ref}/documents"): "addCaseDocument",
    ("post", "/api/v1/cases/{ref}/erase"): "eraseCasePerson",
    ("get", "/api/v1/cases/{ref}/events"): "listCaseEvents",
    ("post", "/api/v1/cases/{ref}/hold"): "holdCase",
    ("get", "/api/v1/cases/{ref}/participants"): "listCaseParticipants",
    ("post", "/api/v1/cases/{ref}/participants"): "addCaseParticipant",
    ("delete", "/api/v1/cases/{ref}/participants/{organisation_id}"): "removeCaseParticipant",
    ("post", "/api/v1/cases/{ref}/resume"): "resumeCase",
    ("get", "/api/v1/cases/{ref}/services"): "listCaseServices",
    ("post", "/api/v1/cases/{ref}/services"): "recordCaseService",
    ("get", "/api/v1/cases/{ref}/status"): "getCaseStatus",
    ("post", "/api/v1/cases/{ref}/transitions"): "moveCase",
    ("delete", "/api/v1/documents/{document_id}"): "deleteDocument",
    ("get", "/api/v1/documents/{document_id}/content"): "downloadDocument",
    ("get", "/api/v1/me"): "getMe",
    ("get", "/api/v1/organisations"): "listOrganisations",
    ("get", "/api/v1/referrals"): "listReferrals",
    ("post", "/api/v1/referrals"): "submitReferral",
    ("get", "/api/v1/referrals/{ref}"): "getReferral",
    ("post", "/api/v1/referrals/{ref}/accept"): "acceptReferral",
    ("get", "/api/v1/referrals/{ref}/documents"): "listReferralDocuments",
    ("post", "/api/v1/referrals/{ref}/documents"): "addReferralDocument",
    ("post", "/api/v1/referrals/{ref}/erase"): "eraseReferralPerson",
    ("post", "/api/v1/referrals/{ref}/information"): "provideReferralInformation",
    ("get", "/api/v1/referrals/{ref}/matches"): "listReferralMatches",
    ("post", "/api/v1/referrals/{ref}/reject"): "rejectReferral",
    ("post", "/api/v1/referrals/{ref}/request-information"): "requestReferralInformation",
    ("post", "/api/v1/referrals/{ref}/review"): "reviewReferral",
    ("post", "/api/v1/referrals/{ref}/withdraw"): "withdrawReferral",
    ("get", "/api/v1/reports/deadlines"): "getDeadlineReport",
    ("get", "/api/v1/reports/export.csv"): "exportCtdcReport",
    ("get", "/api/v1/reports/summary"): "getSummaryReport",
    ("patch", "/api/v1/services/{service_id}"): "updateService",
    ("get", "/api/v1/shelters"): "listShelters",
    ("post", "/api/v1/shelters"): "createShelter",
    ("patch", "/api/v1/shelters/{shelter_id}"): "updateShelter",
    ("post", "/api/v1/webhook-deliveries/{delivery_id}/redeliver"): "redeliverWebhook",
    ("get", "/api/v1/webhooks"): "listWebhooks",
    ("post", "/api/v1/webhooks"): "createWebhook",
    ("delete", "/api/v1/webhooks/{subscription_id}"): "deleteWebhook",
    ("get", "/api/v1/webhooks/{subscription_id}"): "getWebhook",
    ("patch", "/api/v1/webhooks/{subscription_id}"): "updateWebhook",
    ("get", "/api/v1/webhooks/{subscription_id}/deliveries"): "listWebhookDeliveries",
    ("post", "/api/v1/webhooks/{subscription_id}/ping"): "pingWebhook",
    ("post", "/api/v1/webhooks/{subscription_id}/rotate-secret"): "rotateWebhookSecret",
    ("get", "/healthz"): "checkLiveness",
    ("get", "/readyz"): "checkReadiness",
    ("post", "/oauth/token"): "getToken",
    ("post", "/oauth/revoke"): "revokeToken",
    ("post", "/oauth/introspect"): "introspectToken",
}

_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json)",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem",
                 "example": "https://mgec.mn/problems/not_found"},
        "title": {"type": "string", "description": "A short summary of the kind of problem"},
        "status": {"type": "integer", "description": "The HTTP status code", "example": 404},
        "detail": {"type": "string", "description": "What went wrong in this occurrence"},
        "instance": {"type": "string", "description": "The path of the request"},
        "request_id": {"type": "string", "description": "The X-Request-ID of the request"},
        "error": {"type": "string", "description": "The RFC 6750 error code (invalid_token, ...)"},
        "allowed_actions": {"type": "array", "items": {"type": "string"},
                            "description": "The moves allowed from the record's current state"},
    },
}
_VALIDATION_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details naming each refused field in `errors`",
    "required": ["type", "title", "status", "errors"],
    "properties": {
        **_PROBLEM["properties"],
        "errors": {
            "type": "object",
            "description": "Each refused field (a dotted path) with its messages",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
}


def security_definitions() -> dict[str, Any]:
    """The OAuth 2.0 schemes: client credentials for systems, authorization code (PKCE S256) for people."""
    return {
        CLIENT_CREDENTIALS: {
            "type": "oauth2",
            "flow": "application",
            "tokenUrl": TOKEN_URL,
            "description": "A partner's system: client_credentials at /oauth/token (client secret or"
                           " private_key_jwt).",
            "scopes": {s: SCOPE_TEXTS[s] for s in sorted(CLIENT_CREDENTIALS_SCOPES)},
        },
        AUTHORIZATION_CODE: {
            "type": "oauth2",
            "flow": "accessCode",
            "authorizationUrl": AUTHORIZE_URL,
            "tokenUrl": TOKEN_URL,
            "description": "A person: authorization code with PKCE (S256) at /oauth/authorize, then"
                           " /oauth/token.",
            "scopes": {s: SCOPE_TEXTS[s] for s in sorted(ALL_SCOPES)},
        },
    }


def operation_security(needed: Iterable[str]) -> list[dict[str, list[str]]]:
    """Any one of `needed` suffices: one requirement per scope and scheme that can grant it."""
    out: list[dict[str, list[str]]] = []
    for scheme in (CLIENT_CREDENTIALS, AUTHORIZATION_CODE):
        for scope in sorted(needed):
            if scheme == AUTHORIZATION_CODE or scope in CLIENT_CREDENTIALS_SCOPES:
                out.append({scheme: [scope]})
    return out


def route_scopes(api: Api) -> Iterator[tuple[str, str, frozenset[str] | None]]:
    """(method, Swagger path, scopes the route enforces or None) of every flask-restx operation."""
    for ns in api.namespaces:
        for resource, urls, _doc, _kwargs in ns.resources:
            for url in api.ns_urls(ns, urls):
                for method in sorted(m.lower() for m in resource.methods or ()):
                    view = getattr(resource, method)
                    yield method, extract_path(url), getattr(view, "__required_scopes__", None)


def _error_schema(status: str) -> dict[str, str]:
    return {"$ref": "#/definitions/ValidationProblem" if status == "422" else "#/definitions/Problem"}


def _finish_operation(method: str, path: str, op: dict[str, Any]) -> None:
    op["operationId"] = OPERATION_IDS.get((method, path), op.get("operationId"))
    for status, answer in op.get("responses", {}).items():
        if status[0] in "45" and "schema" not in answer:
            answer["schema"] = _error_schema(status)


def extend(api: Api, schema: dict[str, Any]) -> None:
    """Add security, problem schemas and verb ids to the document flask-restx generated."""
    schema.setdefault("definitions", {}).update(Problem=_PROBLEM, ValidationProblem=_VALIDATION_PROBLEM)
    schema["securityDefinitions"] = {**schema.get("securityDefinitions", {}), **security_definitions()}
    schema["securityDefinitions"].pop("oauth2", None)
    paths = schema["paths"]
    for method, path, scopes in route_scopes(api):
        op = paths[path][method]
        op["security"] = operation_security(scopes) if scopes else []
    for path, operations in paths.items():
        for method in METHODS:
            if method in operations:
                _finish_operation(method, path, operations[method])
