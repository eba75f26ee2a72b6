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
