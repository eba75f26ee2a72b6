"""`/oauth/token`, `/oauth/revoke` and `/oauth/introspect` in the OpenAPI document.

They are plain Flask views (Authlib answers them), so flask-restx does not see them; this adds them,
with their form bodies and the RFC 6749 error schema, so generated clients and Swagger UI know them.
"""

from __future__ import annotations

from typing import Any

from ..http import ProblemApi, form_parameters, json_schema
from .schemas import (
    IntrospectionSchema,
    OAuthErrorSchema,
    TokenHintFormSchema,
    TokenRequestSchema,
    TokenResponseSchema,
)

TAG = {
    "name": "oauth",
    "description": "OAuth 2.0: tokens (RFC 6749), revocation (RFC 7009), introspection (RFC 7662)",
}
_ERROR = {"$ref": "#/definitions/OAuthError"}
_ERRORS = {
    "400": {"description": "An RFC 6749 error: invalid_request, invalid_grant, ...", "schema": _ERROR},
    "401": {"description": "invalid_client: the client could not be authenticated", "schema": _ERROR},
    "429": {"description": "Too many requests (problem+json, with Retry-After)"},
}
_CLIENT_AUTH = (
    " Client authentication: HTTP Basic (client_secret_basic), client_id and client_secret in the form"
    " (client_secret_post), or client_assertion (private_key_jwt, RFC 7523)."
)


def _operation(summary: str, description: str, form: Any, ok: dict[str, Any], op_id: str) -> dict[str, Any]:
    return {
        "post": {
            "operationId": op_id,
            "summary": summary,
            "description": description + _CLIENT_AUTH,
            "tags": ["oauth"],
            "consumes": ["application/x-www-form-urlencoded"],
            "produces": ["application/json", "application/problem+json"],
            "parameters": form_parameters(form),
            "security": [{"client_basic": []}, {}],
            "responses": {"200": ok, **_ERRORS},
        }
    }


def extend(schema: dict[str, Any]) -> None:
    """Add the OAuth endpoints, their models and the Basic client authentication to `schema`."""
    schema.setdefault("definitions", {}).update(
        {
            "OAuthError": json_schema(OAuthErrorSchema),
            "OAuthToken": json_schema(TokenResponseSchema),
            "OAuthIntrospection": json_schema(IntrospectionSchema),
        }
    )
    schema.setdefault("securityDefinitions", {})["client_basic"] = {
        "type": "basic",
        "description": "client_secret_basic: client_id and client_secret",
    }
    schema.setdefault("tags", []).append(TAG)
    schema.setdefault("paths", {}).update(
        {
            "/oauth/token": _operation(
                "Get a token (RFC 6749)",
                "grant_type client_credentials (partner systems), authorization_code with PKCE S256"
                " (people, after /oauth/authorize) or refresh_token (rotated on use).",
                TokenRequestSchema,
                {"description": "The token", "schema": {"$ref": "#/definitions/OAuthToken"}},
                "post_oauth_token",
            ),
            "/oauth/revoke": _operation(
                "Revoke a token (RFC 7009)",
                "Revokes one of your own tokens; another client's or an unknown token answers 200 as well.",
                TokenHintFormSchema,
                {"description": "Revoked, or nothing to revoke (an empty body)"},
                "post_oauth_revoke",
            ),
            "/oauth/introspect": _operation(
                "Introspect a token (RFC 7662)",
                "Whether one of your own tokens is live, and what it carries; any other is inactive.",
                TokenHintFormSchema,
                {"description": "The token's state", "schema": {"$ref": "#/definitions/OAuthIntrospection"}},
                "post_oauth_introspect",
            ),
        }
    )


def document(api: ProblemApi) -> None:
    """Have the API's OpenAPI document describe the OAuth endpoints."""
    api.extend_schema(extend)
