"""Field validators shared by the schemas of every part."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

import pycountry
from marshmallow import RAISE, Schema, ValidationError, fields, validate

COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries)


def validate_country(value: str) -> None:
    if value not in COUNTRY_CODES:
        raise ValidationError("Not an ISO 3166-1 alpha-2 country code (upper case, e.g. MN, KR, MO).")


class Country(fields.String):
    """An ISO 3166-1 alpha-2 code, upper case."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate_country)
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("description", "ISO 3166-1 alpha-2 country code")
        metadata.setdefault("example", "MN")
        super().__init__(**kwargs)


class StrictSchema(Schema):
    """An input schema: unknown fields are refused (`status`, `approved_by` cannot be smuggled in)."""

    class Meta:
        unknown = RAISE


def enum_field(enum: type[StrEnum], **kwargs: Any) -> fields.Enum:
    """A StrEnum field spelled by its values."""
    return fields.Enum(enum, by_value=True, **kwargs)


def text_field(max_len: int, **kwargs: Any) -> fields.String:
    """A non-empty string of at most `max_len` characters."""
    return fields.String(validate=validate.Length(min=1, max=max_len), **kwargs)


def not_in_future(value: date) -> None:
    """A date of something that happened: not after today (UTC), not before 1900."""
    if value > datetime.now(UTC).date():
        raise ValidationError("Must not be in the future.")
    if value.year < 1900:
        raise ValidationError("Must be in 1900 or later.")
