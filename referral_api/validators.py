"""Field validators shared by the schemas of every part."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

import pycountry
from marshmallow import RAISE, Schema, ValidationError, fields, validate

COUNTRY_CODES = frozenset(c.alpha_2 for c in pycountry.countries)

# Control characters (Unicode Cc: C0, DEL and C1) and lone surrogates, which no text the service keeps
# may hold (PostgreSQL refuses NUL, and none of them belongs in a name or a note); free text may still
# break lines and indent (tab, line feed, carriage return).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CONTROL_IN_FREE_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def same_secret(sent: str, expected: str) -> bool:
    """Constant-time equality of a text someone sent and the one expected (a form token, an OAuth state,
    a nonce): hmac.compare_digest refuses text beyond ASCII with a TypeError, which was a 500."""
    return hmac.compare_digest(sent.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def control_character(value: str, *, free_text: bool = False) -> str | None:
    """The first character of `value` that no text may hold (as U+XXXX), or None: the one rule for
    every text field, query value, path id and form field."""
    found = (_CONTROL_IN_FREE_TEXT if free_text else _CONTROL).search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def authorization_header_message(value: str) -> str | None:
    """What is wrong with an Authorization header that werkzeug and Authlib cannot decode (they raised
    a 500): credentials are ASCII (RFC 7617, RFC 6750), and Basic ones UTF-8 once base64-decoded."""
    if not value.isascii():
        return "Must be ASCII."
    scheme, credentials = [*value.split(None, 1), "", ""][:2]  # any whitespace, as Authlib splits it
    if scheme.lower() == "basic":
        try:
            base64.b64decode(credentials).decode()  # as Authlib decodes it (not strict base64)
        except binascii.Error:
            return None  # not base64: Authlib and werkzeug read no credentials (401)
        except UnicodeDecodeError:
            return "Basic credentials must be UTF-8."
    return None


def control_character_message(value: str, *, free_text: bool = False) -> str | None:
    """The error message for `value`, or None when it holds no refused character."""
    found = control_character(value, free_text=free_text)
    if found is None:
        return None
    allowed = " (tab and line breaks are allowed)" if free_text else ""
    return f"Must not contain control characters{allowed}; found {found}."


def one_line_problems(value: str, *, max_len: int, required: bool = True) -> list[str]:
    """What is wrong with a one-line text such as a name, checked outside a schema (empty: nothing): its
    length (1, or 0 when not `required`, to `max_len` characters) and any control character."""
    problems = []
    if len(value) > max_len or (required and not value):
        problems.append(f"Length must be between 1 and {max_len}." if required
                        else f"Longer than maximum length {max_len}.")
    if message := control_character_message(value):
        problems.append(message)
    return problems


class FreeText(fields.String):
    """A string of several lines (a narrative, a note, a reason): tab and line breaks are allowed in
    it, other control characters not. Any other string field is one line."""


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


def not_blank(value: str) -> None:
    """A name is not only spaces: a value of whitespace alone is refused like a missing one."""
    if not value.strip():
        raise ValidationError("Must not be blank.")


def text_field(max_len: int, *, free_text: bool = False, blank: bool = True, **kwargs: Any) -> fields.String:
    """A non-empty string of at most `max_len` characters: one line, or `free_text` of several; with
    `blank=False` not whitespace alone either."""
    kind = FreeText if free_text else fields.String
    length = validate.Length(min=1, max=max_len)
    return kind(validate=length if blank else [length, not_blank], **kwargs)


def distinct_items(values: list[Any]) -> None:
    """A list of a vocabulary's values names each at most once (a repeated one would be counted twice
    by the reports)."""
    seen: set[Any] = set()
    repeated: set[str] = set()
    for value in values:
        if value in seen:
            repeated.add(str(getattr(value, "value", value)))
        seen.add(value)
    if repeated:
        raise ValidationError(f"Must not repeat an item; repeated: {', '.join(sorted(repeated))}.")


def vocabulary_list(item: fields.Field, *, max_len: int, min_len: int | None = None,
                    **kwargs: Any) -> fields.List:
    """A list of a vocabulary's values, each at most once (`uniqueItems` in the API's JSON Schema)."""
    kwargs["metadata"] = {**kwargs.get("metadata", {}), "uniqueItems": True}
    return fields.List(item, validate=[validate.Length(min=min_len, max=max_len), distinct_items], **kwargs)


def _utc_representable(value: datetime) -> None:
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValidationError("Must be a moment from year 1 to year 9999 in UTC.") from None


def instant_field(**kwargs: Any) -> fields.AwareDateTime:
    """A moment with its time zone (UTC when it names none, unless `default_timezone` says otherwise),
    one that UTC can hold: 9999-12-31T23:00-05:00 is refused (422), not an OverflowError (500)."""
    kwargs.setdefault("default_timezone", UTC)
    return fields.AwareDateTime(validate=_utc_representable, **kwargs)


# The latest date on Earth is that of UTC+14 (Kiribati's Line Islands): a date that is today anywhere,
# Ulaanbaatar's (UTC+8) before 08:00 local included, is not in the future.
LATEST_UTC_OFFSET = timedelta(hours=14)


def not_in_future(value: date) -> None:
    """A date of something that happened: not after today where the day is latest (UTC+14, so that
    today in Ulaanbaatar or anywhere else is accepted whatever the UTC date), not before 1900."""
    if value > (datetime.now(UTC) + LATEST_UTC_OFFSET).date():
        raise ValidationError("Must not be in the future.")
    if value.year < 1900:
        raise ValidationError("Must be in 1900 or later.")
