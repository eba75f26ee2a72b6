"""Keyset pagination of every list: `?limit=` and `?cursor=`, opaque cursors, one page and the next cursor."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma

from . import errors
from .validators import control_character

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


class PageArgs(ma.Schema):
    """`?limit=` and `?cursor=` of every list."""

    class Meta:
        unknown = ma.EXCLUDE

    limit = ma.fields.Integer(
        load_default=DEFAULT_PAGE_SIZE,
        validate=ma.validate.Range(min=1, max=MAX_PAGE_SIZE),
        metadata={"description": f"page size, 1 to {MAX_PAGE_SIZE}"},
    )
    cursor = ma.fields.String(load_default=None, validate=ma.validate.Length(max=512))


def encode_cursor(values: list[Any]) -> str:
    """An opaque cursor for keyset pagination: the sort key of the last row of a page."""
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, size: int) -> list[Any]:
    """The sort key a cursor carries; a damaged cursor is a 422 on `cursor`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        values = None
    if not isinstance(values, list) or len(values) != size:
        raise _not_a_cursor()
    return values


def _not_a_cursor() -> errors.InvalidPayload:
    return errors.InvalidPayload(errors={"cursor": ["not a cursor this list gave out"]})


def cursor_time(value: Any) -> datetime:
    """A cursor's timestamp as an aware UTC datetime; anything else a cursor never holds (not a string,
    no time zone, out of range once in UTC) is a 422 on `cursor`, not an error of the database's."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
        if when is None or when.tzinfo is None:
            raise _not_a_cursor()
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise _not_a_cursor() from None


def cursor_text(value: Any) -> str:
    """A cursor's text (a name a list is sorted by): a string without control characters (no name holds
    one, and PostgreSQL's text holds no NUL), else a 422 on `cursor`."""
    if not isinstance(value, str) or control_character(value) is not None:
        raise _not_a_cursor()
    return value


def cursor_uuid(value: Any) -> uuid.UUID:
    """A cursor's row id (a tie-breaker after a timestamp); anything else a 422 on `cursor`."""
    try:
        if isinstance(value, str):
            return uuid.UUID(value)
    except ValueError:
        pass
    raise _not_a_cursor()


def cursor_int(value: Any) -> int:
    """A cursor's integer (a sequence number: a signed 64-bit column); else a 422 on `cursor`."""
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise _not_a_cursor()
    return value


def page(items: list[Any], *, limit: int, key: Callable[[Any], list[Any]]) -> tuple[list[Any], str | None]:
    """Split a query result fetched with limit+1 rows into one page and the next cursor."""
    if len(items) > limit:
        items = items[:limit]
        return items, encode_cursor(key(items[-1]))
    return items, None
