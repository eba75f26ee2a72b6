"""What a partner sends with a referral, and what each audience is shown of one (docs/domain.md)."""

from __future__ import annotations

import re
from typing import Any

import marshmallow as ma
from marshmallow import ValidationError, validate, validates_schema

from ..organisations.models import OrganisationKind
from ..paging import PageArgs
from ..validators import (
    Country,
    StrictSchema,
    enum_field,
    instant_field,
    not_in_future,
    text_field,
    vocabulary_list,
)
from .states import ReferralStatus
from .vocab import (
    Concern,
    ConsentMethod,
    ContactFamily,
    ExploitationType,
    LegalBasis,
    Need,
    Province,
    RejectReason,
    SafetyRisk,
    Sex,
    Source,
    Urgency,
)

NATIONAL_ID = re.compile(r"^[А-ЯЁӨҮа-яёөү]{2}[0-9]{8}$")
PASSPORT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 \-]{3,22}[A-Za-z0-9]$")
PHONE = re.compile(r"^\+?[0-9 ()\-]{5,30}$")
PHONE_DIGITS = 5
LANGUAGE = re.compile(r"^[a-z]{2,3}$")
NARRATIVE_MAX = 20_000


def _phone_digits(value: str) -> None:
    if sum(c.isdigit() for c in value) < PHONE_DIGITS:
        raise ValidationError(f"Must hold at least {PHONE_DIGITS} digits.")


class PersonInSchema(StrictSchema):
    family_name = text_field(100, blank=False, metadata={"example": "Dorj"})
    given_name = text_field(100, blank=False, required=True, metadata={"example": "Batbayar"})
    names_cyrillic = text_field(200, blank=False, metadata={"example": "Доржийн Батбаяр"})
    aliases = ma.fields.List(text_field(100, blank=False), validate=validate.Length(max=10))
    sex = enum_field(Sex, load_default=Sex.UNKNOWN)
    date_of_birth = ma.fields.Date(validate=not_in_future)
    estimated_age = ma.fields.Integer(validate=validate.Range(min=0, max=120))
    nationality = Country()
    passport_number = ma.fields.String(
        validate=validate.Regexp(PASSPORT, error="5 to 24 letters or digits (spaces and hyphens allowed)."),
        metadata={"example": "E1234567"},
    )
    national_id = ma.fields.String(
        validate=validate.Regexp(
            NATIONAL_ID, error="Two Cyrillic letters and eight digits, e.g. УБ99112233."
        ),
        metadata={"example": "УБ99112233"},
    )
    phone = ma.fields.String(
        validate=[validate.Regexp(PHONE, error="A phone number: digits, spaces, + ( ) -."), _phone_digits],
        metadata={"description": f"digits, spaces, + ( ) -; at least {PHONE_DIGITS} digits"},
    )
    home_province = enum_field(Province)
    languages = ma.fields.List(
        ma.fields.String(validate=validate.Regexp(LANGUAGE, error="An ISO 639 code such as mn, ru, ko.")),
        validate=validate.Length(max=10),
    )
    current_location = text_field(200)

    @validates_schema
    def _age_known(self, data, **kwargs):
        if kwargs.get("partial") or self.partial:
            return
        if data.get("date_of_birth") is None and data.get("estimated_age") is None:
            raise ValidationError(
                "Give date_of_birth or, when it is unknown, estimated_age.", "date_of_birth"
            )


class SituationInSchema(StrictSchema):
    identified_country = Country(required=True)
    identified_city = text_field(100, metadata={"example": "Macau"})
    identified_on = ma.fields.Date(required=True, validate=not_in_future)
    exploitation_types = vocabulary_list(
        enum_field(ExploitationType), min_len=1, max_len=len(ExploitationType), required=True,
        metadata={"description": "each type at most once"},
    )
    narrative = text_field(NARRATIVE_MAX, free_text=True)
    urgency = enum_field(Urgency, load_default=Urgency.ROUTINE)
    needs = vocabulary_list(
        enum_field(Need), max_len=len(Need), metadata={"description": "each need at most once"}
    )
    safety_risk = enum_field(SafetyRisk)
    contact_family = enum_field(ContactFamily, load_default=ContactFamily.UNKNOWN)


SHAREABLE_KINDS = [k.value for k in OrganisationKind if k is not OrganisationKind.MGEC]


class ConsentInSchema(StrictSchema):
    given = ma.fields.Boolean(required=True)
    obtained_on = ma.fields.Date(validate=not_in_future)
    obtained_by = text_field(200)
    method = enum_field(ConsentMethod)
    language = ma.fields.String(validate=validate.Regexp(LANGUAGE, error="An ISO 639 code such as mn."))
    share_with = vocabulary_list(
        ma.fields.String(validate=validate.OneOf(SHAREABLE_KINDS)),
        max_len=len(SHAREABLE_KINDS),
        load_default=list,
        metadata={"description": "kinds of organisation the person agreed to share with, each at most once"},
    )

    @validates_schema
    def _how(self, data, **_kwargs):
        if data.get("given"):
            missing = {
                f: ["Required when consent is given."]
                for f in ("method", "obtained_on")
                if data.get(f) is None
            }
            if missing:
                raise ValidationError(missing)


class ReferralInSchema(StrictSchema):
    source = enum_field(Source, required=True)
    external_reference = text_field(100, metadata={"description": "the partner's own case number"})
    concern = enum_field(Concern, load_default=Concern.TRAFFICKING)
    person = ma.fields.Nested(PersonInSchema, required=True)
    situation = ma.fields.Nested(SituationInSchema, required=True)
    consent = ma.fields.Nested(ConsentInSchema, required=True)
    legal_basis = enum_field(LegalBasis, metadata={"description": "required when consent.given is false"})


class InformationInSchema(StrictSchema):
    """The partner's answer, and the facts it adds or corrects (partial person and situation)."""

    answer = text_field(NARRATIVE_MAX, free_text=True, required=True)
    person = ma.fields.Nested(PersonInSchema(partial=True))
    situation = ma.fields.Nested(SituationInSchema(partial=True))


class AcceptInSchema(StrictSchema):
    case_id = ma.fields.String(
        validate=validate.Length(min=1, max=40),
        metadata={"description": "an existing case (id or CASE-reference) to link to"},
    )
    note = text_field(5000, free_text=True)


class RejectInSchema(StrictSchema):
    reason = enum_field(RejectReason, required=True)
    note = text_field(5000, free_text=True, required=True)


class RequestInformationInSchema(StrictSchema):
    questions = text_field(5000, free_text=True, required=True)


class NoteInSchema(StrictSchema):
    note = text_field(5000, free_text=True)


class ReferralListArgs(PageArgs):
    """The filters of `GET /referrals`, and `limit`/`cursor` as every list has them."""

    class Meta:
        unknown = ma.RAISE

    status = enum_field(ReferralStatus)
    source = enum_field(Source)
    identified_country = Country()
    submitted_after = instant_field()
    urgency = enum_field(Urgency)
    overdue = ma.fields.Boolean(metadata={"description": "true: only those past a deadline"})


# ---- output: one schema per audience -------------------------------------------------------------


class PersonOutSchema(ma.Schema):
    family_name = ma.fields.String(allow_none=True)
    given_name = ma.fields.String(allow_none=True)
    names_cyrillic = ma.fields.String(allow_none=True)
    aliases = ma.fields.List(ma.fields.String(), allow_none=True)
    sex = ma.fields.String()
    date_of_birth = ma.fields.Date(allow_none=True)
    estimated_age = ma.fields.Integer(allow_none=True)
    nationality = ma.fields.String(allow_none=True)
    passport_number = ma.fields.String(allow_none=True)
    national_id = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    home_province = ma.fields.String(allow_none=True)
    languages = ma.fields.List(ma.fields.String(), allow_none=True)
    current_location = ma.fields.String(allow_none=True)


class SituationOutSchema(ma.Schema):
    identified_country = ma.fields.String()
    identified_city = ma.fields.String(allow_none=True)
    identified_on = ma.fields.Date()
    exploitation_types = ma.fields.List(ma.fields.String())
    narrative = ma.fields.String(allow_none=True)
    urgency = ma.fields.String()
    needs = ma.fields.List(ma.fields.String(), allow_none=True)
    safety_risk = ma.fields.String(allow_none=True)
    contact_family = ma.fields.String(allow_none=True)


class ConsentOutSchema(ma.Schema):
    given = ma.fields.Boolean()
    obtained_on = ma.fields.Date(allow_none=True)
    obtained_by = ma.fields.String(allow_none=True)
    method = ma.fields.String(allow_none=True)
    language = ma.fields.String(allow_none=True)
    share_with = ma.fields.List(ma.fields.String())


class MessageSchema(ma.Schema):
    id = ma.fields.UUID()
    kind = ma.fields.String()
    text = ma.fields.String(allow_none=True)
    organisation_id = ma.fields.UUID()
    created_at = ma.fields.AwareDateTime()


class ReferralStatusSchema(ma.Schema):
    """What the referring partner sees once the referral is decided: its status, nothing personal."""

    id = ma.fields.UUID()
    reference = ma.fields.String(metadata={"example": "REF-2026-000123"})
    external_reference = ma.fields.String(allow_none=True)
    status = ma.fields.String()
    submitted_at = ma.fields.AwareDateTime()
    status_changed_at = ma.fields.AwareDateTime()
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    reject_reason = ma.fields.String(allow_none=True)
    case_id = ma.fields.UUID(allow_none=True)
    erased = ma.fields.Boolean(metadata={"description": "the personal data was crypto-shredded for good"})
    erased_at = ma.fields.AwareDateTime(allow_none=True)


class ReferralPartnerSchema(ReferralStatusSchema):
    """What the referring partner sees while the referral is open: what it sent, and the questions."""

    concern = ma.fields.String()
    source = ma.fields.String()
    is_minor = ma.fields.Boolean(allow_none=True)
    person = ma.fields.Nested(PersonOutSchema, allow_none=True, metadata={"description": "null once erased"})
    situation = ma.fields.Nested(SituationOutSchema)
    consent = ma.fields.Nested(ConsentOutSchema)
    legal_basis = ma.fields.String(allow_none=True)
    minimised = ma.fields.List(
        ma.fields.String(),
        metadata={
            "description": "fields not kept because the legal basis without consent does not need them"
        },
    )
    messages = ma.fields.List(ma.fields.Nested(MessageSchema))
    allowed_actions = ma.fields.List(ma.fields.String())


class ReferralStaffSchema(ReferralPartnerSchema):
    """What MGEC coordinators and caseworkers see."""

    submitted_by_organisation_id = ma.fields.UUID()
    age_band = ma.fields.String(allow_none=True)
    decision_note = ma.fields.String(allow_none=True)
    possible_duplicates = ma.fields.Integer()


class ReferralPageSchema(ma.Schema):
    items = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "referrals, each in the schema of the caller's audience"}
    )
    next_cursor = ma.fields.String(allow_none=True)


class MatchSchema(ma.Schema):
    referral_id = ma.fields.UUID()
    reference = ma.fields.String()
    status = ma.fields.String()
    case_id = ma.fields.UUID(allow_none=True)
    score = ma.fields.Float()
    reasons = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "passport, national_id, name_birth_year (each a match of this kind)"},
    )

    @ma.pre_dump
    def _of_match(self, match: Any, **_kw: Any) -> dict[str, Any]:
        """A `matching.Match` as the caller sees it: the other referral, the score and why (sorted)."""
        other = match.referral
        return {"referral_id": other.id, "reference": other.reference, "status": other.status,
                "case_id": other.case_id, "score": match.score, "reasons": sorted(match.reasons)}


class MatchesSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(MatchSchema))
