"""`Idempotency-Key` on POSTs that create or move something (API.md, Conventions).

The same key and body from the same caller gets the first answer again, without a second change;
the same key with another body is a 422. The key is reserved in the same transaction as the change,
so of two concurrent requests with one key exactly one changes anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from flask import Response, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, IdMixin, UTCDateTime, utcnow
from .errors import Conflict, InvalidPayload

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class IdempotencyKey(IdMixin, Base):
    __tablename__ = "idempotency_keys"

    owner: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    response_body: Mapped[str | None] = mapped_column(sa.Text)
    location: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    __table_args__ = (sa.UniqueConstraint("owner", "key"),)


def _fingerprint() -> str:
    body = request.get_data(cache=True)
    with contextlib.suppress(ValueError):
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + body).hexdigest()


def _replay(row: IdempotencyKey, fingerprint: str) -> Response:
    if row.fingerprint != fingerprint:
        raise InvalidPayload(
            "This Idempotency-Key was used with another request body.",
            errors={HEADER: ["already used with a different request"]},
        )
    if row.status_code is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )
    response = Response(row.response_body or "", status=row.status_code, mimetype="application/json")
    if row.location:
        response.headers["Location"] = row.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(session: Session, owner: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        sa.select(IdempotencyKey).where(IdempotencyKey.owner == owner, IdempotencyKey.key == key)
    )


def idempotent(session: Session, *, owner: str, handler: Callable[[], Response],
               stored: Callable[[Response], str] | None = None) -> Response:
    """Run `handler` (which calls one service that commits) at most once per (owner, Idempotency-Key).

    `stored` gives the body kept for replays (default: the answer's body); a route whose answer shows
    a secret once passes one that leaves the secret out, so it is never stored in clear.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return handler()
    if not _VALID_KEY.match(key):
        raise InvalidPayload(errors={HEADER: ["1 to 255 visible ASCII characters"]})
    fingerprint = _fingerprint()
    existing = _find(session, owner, key)
    if existing is not None:
        return _replay(existing, fingerprint)
    reservation = IdempotencyKey(owner=owner, key=key, fingerprint=fingerprint)
    session.add(reservation)
    try:
        # Flushed now so that the unique (owner, key) row is taken inside the change's own transaction:
        # a concurrent request with the same key waits here, then fails and replays our answer.
        session.flush()
    except IntegrityError:
        session.rollback()
        winner = _find(session, owner, key)
        if winner is None:  # the other request failed and rolled back: nothing was changed, go ahead
            return idempotent(session, owner=owner, handler=handler, stored=stored)
        return _replay(winner, fingerprint)
    try:
        response = handler()
    except Exception:
        # The handler failed. Its change was rolled back, but a commit on the way (an audited denial)
        # may have committed the reservation: free the key so that a corrected retry can use it.
        session.rollback()
        session.execute(sa.delete(IdempotencyKey).where(
            IdempotencyKey.owner == owner, IdempotencyKey.key == key, IdempotencyKey.status_code.is_(None)))
        session.commit()
        raise
    if 200 <= response.status_code < 300:
        reservation.status_code = response.status_code
        reservation.response_body = stored(response) if stored else response.get_data(as_text=True)
        reservation.location = response.headers.get("Location")
    else:
        # Nothing was created: free the key so that a corrected retry can use it.
        session.delete(reservation)
    session.commit()
    return response
