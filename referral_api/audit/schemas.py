"""What the audit API shows and which filters it takes."""

from __future__ import annotations

import marshmallow as ma

from ..paging import PageArgs
from ..validators import instant_field
from .actions import AuditAction, Outcome


class AuditEventSchema(ma.Schema):
    seq = ma.fields.Integer()
    id = ma.fields.UUID()
    occurred_at = ma.fields.AwareDateTime()
    organisation_id = ma.fields.UUID(allow_none=True)
    client_id = ma.fields.String(allow_none=True)
    user_id = ma.fields.String(allow_none=True)
    action = ma.fields.String()
    resource_type = ma.fields.String()
    resource_id = ma.fields.String(allow_none=True)
    outcome = ma.fields.Enum(Outcome, by_value=True)
    request_id = ma.fields.String(allow_none=True)
    details = ma.fields.Dict(allow_none=True)
    prev_hash = ma.fields.String()
    hash = ma.fields.String()


class AuditPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(AuditEventSchema))
    next_cursor = ma.fields.String(allow_none=True)


class AuditQuerySchema(PageArgs):
    """`GET /api/v1/audit` filters; unknown parameters are refused."""

    class Meta:
        unknown = ma.RAISE

    actor_id = ma.fields.String(validate=ma.validate.Length(max=100))
    organisation_id = ma.fields.UUID()
    resource_type = ma.fields.String(validate=ma.validate.Length(max=50))
    resource_id = ma.fields.String(validate=ma.validate.Length(max=100))
    action = ma.fields.Enum(AuditAction, by_value=True)
    since = instant_field(default_timezone=None)
    until = instant_field(default_timezone=None)


class VerifyResultSchema(ma.Schema):
    ok = ma.fields.Boolean()
    checked = ma.fields.Integer()
    head_seq = ma.fields.Integer()
    head_hash = ma.fields.String()
    first_bad_seq = ma.fields.Integer(allow_none=True)
    problem = ma.fields.String(allow_none=True)
    checkpoint_seq = ma.fields.Integer(allow_none=True)
    unsealed = ma.fields.Integer(metadata={"description": "Events committed but not yet sealed into the "
                                                          "chain (not checked; sealed by the next writer)."})
