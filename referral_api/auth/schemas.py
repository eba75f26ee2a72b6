"""What the caller is shown about itself (`GET /api/v1/me`) and about clients and people (CLI)."""

from __future__ import annotations

import marshmallow as ma


class OrganisationRefSchema(ma.Schema):
    id = ma.fields.UUID(required=True)
    kind = ma.fields.String(required=True, metadata={"example": "embassy"})


class MeSchema(ma.Schema):
    """The Actor behind the token: organisation, client, person (if any), role and scopes."""

    organisation = ma.fields.Nested(OrganisationRefSchema, required=True)
    client_id = ma.fields.String(required=True)
    user_id = ma.fields.UUID(allow_none=True, required=True)
    role = ma.fields.String(allow_none=True, required=True, metadata={"example": "mgec_coordinator"})
    scopes = ma.fields.List(ma.fields.String(), required=True)


class ClientSchema(ma.Schema):
    id = ma.fields.UUID()
    client_id = ma.fields.String()
    name = ma.fields.String()
    organisation_id = ma.fields.UUID()
    token_endpoint_auth_method = ma.fields.Function(lambda c: c.token_endpoint_auth_method.value)
    scopes = ma.fields.Function(lambda c: c.scope.split())
    grant_types = ma.fields.Function(lambda c: c.grant_types.split())
    redirect_uris = ma.fields.Function(lambda c: c.redirect_uris.split())
    jwks_uri = ma.fields.String(allow_none=True)
    require_dpop = ma.fields.Boolean()
    dpop_nonce = ma.fields.Boolean()
    revoked = ma.fields.Function(lambda c: c.is_revoked)
    created_at = ma.fields.DateTime()


class UserSchema(ma.Schema):
    id = ma.fields.UUID()
    email = ma.fields.String()
    name = ma.fields.String()
    organisation_id = ma.fields.UUID()
    role = ma.fields.Function(lambda u: u.role.value)
    active = ma.fields.Boolean()
    totp_enabled = ma.fields.Function(lambda u: u.totp_secret_ciphertext is not None)


# ---- the OAuth 2.0 endpoints, as described in the OpenAPI document (auth/openapi.py) --------------

_GRANTS = ["client_credentials", "authorization_code", "refresh_token"]
_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_HINTS = ["access_token", "refresh_token"]


class ClientAuthFormSchema(ma.Schema):
    """Client authentication in the form body (else HTTP Basic: client_secret_basic)."""

    client_id = ma.fields.String(metadata={"description": "client_secret_post, or with private_key_jwt"})
    client_secret = ma.fields.String(metadata={"description": "client_secret_post only"})
    client_assertion_type = ma.fields.String(
        validate=ma.validate.OneOf([_ASSERTION_TYPE]),
        metadata={"description": "private_key_jwt (RFC 7523)"},
    )
    client_assertion = ma.fields.String(
        metadata={"description": "a JWT (PS256, ES256 or EdDSA): iss = sub = client_id, aud = the issuer"}
    )


class TokenRequestSchema(ClientAuthFormSchema):
    """RFC 6749 token request; which fields a grant needs is in its description."""

    grant_type = ma.fields.String(required=True, validate=ma.validate.OneOf(_GRANTS))
    scope = ma.fields.String(
        metadata={"description": "space-separated scopes (client_credentials, refresh_token)"}
    )
    code = ma.fields.String(metadata={"description": "authorization_code: the code from /oauth/authorize"})
    redirect_uri = ma.fields.String(
        metadata={"description": "authorization_code: as sent to /oauth/authorize"}
    )
    code_verifier = ma.fields.String(
        metadata={"description": "authorization_code: the PKCE verifier (S256)"}
    )
    refresh_token = ma.fields.String(
        metadata={"description": "refresh_token: the refresh token (rotated on use)"}
    )


class TokenHintFormSchema(ClientAuthFormSchema):
    """RFC 7009 revocation and RFC 7662 introspection requests."""

    token = ma.fields.String(required=True, metadata={"description": "an access or refresh token of yours"})
    token_type_hint = ma.fields.String(validate=ma.validate.OneOf(_HINTS))


class TokenResponseSchema(ma.Schema):
    """RFC 6749 section 5.1."""

    access_token = ma.fields.String(required=True)
    token_type = ma.fields.String(required=True, metadata={"example": "Bearer"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "seconds (900 by default)"})
    scope = ma.fields.String(
        metadata={"description": "what was granted, space-separated"}
    )
    refresh_token = ma.fields.String(
        metadata={"description": "people's tokens only; rotated on use"}
    )


class OAuthErrorSchema(ma.Schema):
    """RFC 6749 section 5.2 (also RFC 7009 and 7662 errors).

    A form refused before Authlib reads it (a control character in a field) is answered as
    problem+json carrying `error: invalid_request`: the document lets those other members through.
    """

    class Meta:
        unknown = ma.INCLUDE

    error = ma.fields.String(
        required=True,
        metadata={
            "description": "invalid_request, invalid_client, invalid_grant, unauthorized_client, "
            "unsupported_grant_type, invalid_scope or unsupported_token_type"
        },
    )
    error_description = ma.fields.String()
    error_uri = ma.fields.String()


class IntrospectionSchema(ma.Schema):
    """RFC 7662 section 2.2: `{"active": false}` for a token that is not live or not yours."""

    active = ma.fields.Boolean(required=True)
    client_id = ma.fields.String()
    scope = ma.fields.String()
    sub = ma.fields.String(metadata={"description": "the person's id, or the client_id"})
    iss = ma.fields.String()
    iat = ma.fields.Integer()
    exp = ma.fields.Integer(allow_none=True)
    token_type = ma.fields.String(metadata={"description": "access tokens: Bearer"})
    organisation_id = ma.fields.String()
