"""What comes in to a case and what each audience is shown of one (docs/domain.md, Case)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate, validates_schema

from ..organisations.models import OrganisationKind, OrganisationStatus
from ..paging import PageArgs
from ..validators import StrictSchema, enum_field, instant_field, text_field
from .models import ServiceKind, ServiceStatus
from .persons import ConsentMethod
from .stages import ParticipantRole, Stage

# ---- input ------------------------------------------------------------------------------------------


class TransitionInSchema(StrictSchema):
    to = enum_field(Stage, required=True)
    occurred_at = instant_field(
        metadata={"description": "when it happened (default: now); not in the future"}
    )
    note = text_field(
        5000, free_text=True, metadata={"description": "required for a step back and a reopening: why"}
    )
    details = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=dict,
        metadata={"description": "what the move records, as docs/domain.md's stage table names it"},
    )


class ReasonInSchema(StrictSchema):
    reason = text_field(2000, free_text=True, required=True)
    occurred_at = instant_field()


SHAREABLE_KINDS = [k.value for k in OrganisationKind if k is not OrganisationKind.MGEC]


class ConsentChangeInSchema(StrictSchema):
    """The kinds of organisation the person now agrees to share with; leaving one out withdraws consent."""

    share_with = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(SHAREABLE_KINDS)),
        required=True,
        validate=validate.Length(max=len(SHAREABLE_KINDS)),
        metadata={"description": "kinds of organisation the person agrees to share with ([]: none)"},
    )
    method = enum_field(
        ConsentMethod,
        metadata={"description": "how the consent now given was given; for a minor (docs/domain.md) "
                  "a kind added to share_with needs `guardian` (else a 422 naming method); "
                  "withdrawing never does"},
    )
    note = text_field(
        5000,
        allow_none=True,
        metadata={"description": "why consent changed; sealed, on the timeline for MGEC staff only"},
    )


class ResumeInSchema(StrictSchema):
    reason = text_field(2000, free_text=True)
    occurred_at = instant_field()


class ParticipantInSchema(StrictSchema):
    organisation_id = ma.fields.UUID(required=True)
    role = enum_field(ParticipantRole, required=True)


_CAPACITY = validate.Range(min=0, max=10000)


class ShelterInSchema(StrictSchema):
    """A new shelter (MGEC admin)."""

    name = text_field(200, required=True)
    city = text_field(100, required=True)
    capacity = ma.fields.Integer(strict=True, required=True, validate=_CAPACITY)
    organisation_id = ma.fields.UUID(allow_none=True, metadata={"description": "who runs it, if not MGEC"})


class ShelterPatchSchema(StrictSchema):
    """Rename, move, resize, close (`closed: true`) or reopen a shelter; capacity never below occupancy."""

    name = text_field(200)
    city = text_field(100)
    capacity = ma.fields.Integer(strict=True, validate=_CAPACITY)
    organisation_id = ma.fields.UUID(allow_none=True)
    closed = ma.fields.Boolean()

    @validates_schema
    def _something(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("name at least one field to change", "_schema")


class ServiceInSchema(StrictSchema):
    kind = enum_field(ServiceKind, required=True)
    provider_id = ma.fields.UUID(allow_none=True)
    shelter_id = ma.fields.UUID(allow_none=True)
    status = enum_field(ServiceStatus, load_default=ServiceStatus.PLANNED)
    starts_on = ma.fields.Date(allow_none=True)
    ends_on = ma.fields.Date(allow_none=True)
    note = text_field(5000, free_text=True, allow_none=True)

    @validates_schema
    def _shelter(self, data, **_kwargs):
        if (data["kind"] is ServiceKind.SHELTER) != (data.get("shelter_id") is not None):
            raise ma.ValidationError(
                "a shelter service names its shelter; no other service does", "shelter_id"
            )
        if data.get("starts_on") and data.get("ends_on") and data["ends_on"] < data["starts_on"]:
            raise ma.ValidationError("must not be before starts_on", "ends_on")


class ServicePatchSchema(StrictSchema):
    status = enum_field(ServiceStatus)
    starts_on = ma.fields.Date(allow_none=True)
    ends_on = ma.fields.Date(allow_none=True)
    note = text_field(5000, free_text=True, allow_none=True)


class CaseListArgs(StrictSchema, PageArgs):
    """The filters of `GET /cases`, and `limit`/`cursor` as every list has them (unknown keys refused)."""

    stage = enum_field(Stage)
    on_hold = ma.fields.Boolean()
    participant = ma.fields.UUID(metadata={
        "description": "an organisation id taking part (MGEC staff; a partner only its own, else 422)"})
    overdue = ma.fields.Boolean(metadata={"description": "true: only those past a deadline"})


class DirectoryArgs(StrictSchema, PageArgs):
    q = ma.fields.String(load_default="", validate=validate.Length(max=200),
                         metadata={"description": "a part of the name, any case"})


class StatusArgs(StrictSchema):
    external_reference = text_field(100, required=True)


# ---- output -----------------------------------------------------------------------------------------


class KeyDatesSchema(ma.Schema):
    referred_at = ma.fields.AwareDateTime(allow_none=True)
    accepted_at = ma.fields.AwareDateTime(allow_none=True)
    travel_document_issued_on = ma.fields.Date(allow_none=True)
    departed_on = ma.fields.Date(allow_none=True)
    arrived_on = ma.fields.Date(allow_none=True)
    closed_at = ma.fields.AwareDateTime(allow_none=True)


class CaseStatusSchema(ma.Schema):
    """Reference, stage and key dates: nothing personal (scope cases:status)."""

    id = ma.fields.UUID()
    reference = ma.fields.String()
    stage = enum_field(Stage)
    stage_since = ma.fields.AwareDateTime()
    on_hold = ma.fields.Boolean()
    key_dates = ma.fields.Nested(KeyDatesSchema)


_PERSON = ma.fields.Dict(
    allow_none=True,
    metadata={
        "description": "the person (field names of docs/domain.md) as far as the caller may see it: "
        "MGEC staff all; a participant only if the person's consent covers its kind of organisation "
        "(an embassy: name, date of birth and documents); otherwise null. Absent from lists."
    },
)


class CaseParticipantViewSchema(CaseStatusSchema):
    """What a participant sees: the status, its own role and the moves that role may record."""

    role = enum_field(ParticipantRole)
    erased = ma.fields.Boolean(metadata={"description": "the person's data was crypto-shredded for good"})
    allowed_stages = ma.fields.List(ma.fields.String())
    person = _PERSON


class ParticipantSchema(ma.Schema):
    organisation_id = ma.fields.UUID()
    role = enum_field(ParticipantRole)
    external_reference = ma.fields.String(allow_none=True)
    added_at = ma.fields.AwareDateTime()


class CaseStaffSchema(CaseStatusSchema):
    erased = ma.fields.Boolean(metadata={"description": "the person's data was crypto-shredded for good"})
    erased_at = ma.fields.AwareDateTime(allow_none=True)
    internal = ma.fields.Boolean()
    on_hold_since = ma.fields.AwareDateTime(allow_none=True)
    hold_reason = ma.fields.String(allow_none=True)
    closure_reason = ma.fields.String(allow_none=True)
    opened_by_organisation_id = ma.fields.UUID()
    share_with = ma.fields.List(ma.fields.String())
    participants = ma.fields.List(ma.fields.Nested(ParticipantSchema))
    allowed_stages = ma.fields.List(ma.fields.String(), metadata={
        "description": "the stages the case may move to now; from `closed`, the reopenings, which only "
                       "an MGEC admin may make (403 for other staff)"})
    person = _PERSON


class CasePageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Dict(), metadata={"description": "cases, each in the caller's view"})
    next_cursor = ma.fields.String(allow_none=True)


class CaseEventSchema(ma.Schema):
    id = ma.fields.UUID()
    kind = ma.fields.String()
    from_stage = ma.fields.String(allow_none=True)
    to_stage = ma.fields.String(allow_none=True)
    occurred_at = ma.fields.AwareDateTime()
    recorded_at = ma.fields.AwareDateTime()
    organisation_id = ma.fields.UUID()
    client_id = ma.fields.String(metadata={"description": "MGEC staff only"})
    user_id = ma.fields.UUID(allow_none=True, metadata={"description": "MGEC staff only"})
    details = ma.fields.Dict()
    note = ma.fields.String(allow_none=True, metadata={"description": "MGEC staff only"})


class TimelineSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CaseEventSchema))


class ParticipantListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ParticipantSchema))


class ServiceSchema(ma.Schema):
    id = ma.fields.UUID()
    case_id = ma.fields.UUID()
    kind = enum_field(ServiceKind)
    provider_id = ma.fields.UUID(allow_none=True)
    shelter_id = ma.fields.UUID(allow_none=True)
    status = enum_field(ServiceStatus)
    starts_on = ma.fields.Date(allow_none=True)
    ends_on = ma.fields.Date(allow_none=True)
    note = ma.fields.String(
        allow_none=True,
        metadata={"description": "sealed, personal: MGEC staff's, and the provider's while the person's "
                  "consent covers its kind of organisation; else null"},
    )
    updated_at = ma.fields.AwareDateTime()


class ServiceListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ServiceSchema))


class ShelterSchema(ma.Schema):
    id = ma.fields.UUID()
    name = ma.fields.String()
    city = ma.fields.String()
    capacity = ma.fields.Integer()
    occupancy = ma.fields.Integer(metadata={"description": "beds taken by planned or ongoing placements"})
    organisation_id = ma.fields.UUID(allow_none=True, metadata={"description": "who runs it, if not MGEC"})
    closed = ma.fields.Boolean(metadata={"description": "a closed shelter takes no new placements"})
    closed_at = ma.fields.AwareDateTime(allow_none=True)


class ShelterListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ShelterSchema))


class DirectoryEntrySchema(ma.Schema):
    """An organisation as a partner sees it in the directory: its id and name."""

    id = ma.fields.UUID()
    name = ma.fields.String()


class DirectoryStaffEntrySchema(DirectoryEntrySchema):
    """An organisation as MGEC staff see it in the directory."""

    kind = ma.fields.Enum(OrganisationKind, by_value=True)
    country = ma.fields.String()
    status = ma.fields.Enum(OrganisationStatus, by_value=True)


class DirectoryPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DirectoryStaffEntrySchema),
                           metadata={"description": "partners get id and name only"})
    next_cursor = ma.fields.String(allow_none=True)
