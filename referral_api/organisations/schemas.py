"""What comes in to create an organisation and what is shown of one."""

from __future__ import annotations

import marshmallow as ma

from ..validators import Country
from .models import OrganisationKind, OrganisationStatus


class OrganisationInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=2, max=200))
    kind = ma.fields.Enum(OrganisationKind, required=True, by_value=True)
    country = Country(required=True)


class OrganisationSchema(ma.Schema):
    id = ma.fields.UUID(dump_only=True)
    name = ma.fields.String()
    kind = ma.fields.Enum(OrganisationKind, by_value=True)
    country = ma.fields.String()
    status = ma.fields.Enum(OrganisationStatus, by_value=True)
    created_at = ma.fields.AwareDateTime()
