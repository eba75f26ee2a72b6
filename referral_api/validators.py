"""Field validators shared by the schemas of every part."""

from __future__ import annotations

import pycountry
from marshmallow import ValidationError, fields

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
