"""`Idempotency-Key` on POSTs that create or move something (docs/api.md).

A key belongs to the principal that used it: organisation, client and person. The same key and body
from the same principal within IDEMPOTENCY_TTL_HOURS gets the first answer again without a second
change; another body is a 422; an expired key counts as new. Nothing personal is kept: only the
resource's id, the status and the Location. A replay re-renders the resource through the route's own
read, for this caller now, so visibility, consent and erasure apply and the read is audited as a fresh
one. The key is written in the change's own transaction (one commit, see `db.UnitOfWork`): of two
concurrent requests with one key exactly one changes anything, and a crash leaves no key behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import Response, current_app, request
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import audit
from .access import Actor
from .db import Base, IdMixin, UnitOfWork, UTCDateTime, utcnow
from .errors import Conflict, InvalidPayload

HEADER = "Idempotency-Key"
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

Handler = Callable[[], tuple[object, Response]]
"""Makes the change (one service call) and answers it: the resource's id and the response."""
Replay = Callable[[str], Response]
"""Renders the resource of that id for the caller now, as the route's fresh read would (audited)."""


class IdempotencyKey(IdMixin, Base):
    __tablename__ = "idempotency_keys"

    # "<organisation id>/<client id>/<user id or ->": a person's key is theirs, not their client's.
    principal: Mapped[str] = mapped_column(sa.String(200), nullable=False)
    key: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer)
    resource_id: Mapped[str | None] = mapped_column(sa.String(100))
    location: Mapped[str | None] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, index=True)

    __table_args__ = (sa.UniqueConstraint("principal", "key"),)


def principal_of(actor: Actor) -> str:
    """Whose key it is: the organisation, the client and the person (or `-` for a system)."""
    return f"{actor.organisation_id}/{actor.client_id}/{actor.user_id or '-'}"


def _fingerprint() -> str:
    body = request.get_data(cache=True)
    with contextlib.suppress(ValueError):
        body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(request.method.encode() + b" " + request.path.encode() + b"\n" + body).hexdigest()


def _replay(row: IdempotencyKey, fingerprint: str, replay: Replay) -> Response:
    if row.fingerprint != fingerprint:
        raise InvalidPayload(
            "This Idempotency-Key was used with another request body.",
            errors={HEADER: ["already used with a different request"]},
        )
    if row.status_code is None or row.resource_id is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed; retry shortly.",
            headers={"Retry-After": "1"},
        )
    response = replay(row.resource_id)
    response.status_code = row.status_code
    if row.location:
        response.headers["Location"] = row.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _find(session: Session, principal: str, key: str) -> IdempotencyKey | None:
    return session.scalar(
        sa.select(IdempotencyKey).where(IdempotencyKey.principal == principal, IdempotencyKey.key == key)
    )


def _ttl() -> timedelta:
    return timedelta(hours=current_app.config["SETTINGS"].idempotency_ttl_hours)


def _reserve_statement(dialect: str) -> sa.Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    names = ("id", "principal", "key", "fingerprint", "created_at", "expires_at")
    table = IdempotencyKey.__table__
    return (
        insert(table)
        .values({name: sa.bindparam(name) for name in names})
        .on_conflict_do_nothing(index_elements=["principal", "key"])
        .returning(table.c.id)
    )


# Built once, on the table (Core: the row is never loaded into the session, nothing to synchronise):
# a statement constructed per request costs more than sending it.
_RESERVE = {dialect: _reserve_statement(dialect) for dialect in ("postgresql", "sqlite")}
_ANSWER = (
    sa.update(IdempotencyKey.__table__)
    .where(IdempotencyKey.__table__.c.id == sa.bindparam("reservation"))
    .values(status_code=sa.bindparam("status_code"), resource_id=sa.bindparam("resource_id"),
            location=sa.bindparam("location"))
)


def _reserve(session: Session, *, principal: str, key: str, fingerprint: str,
             now: datetime) -> uuid.UUID | None:
    """Take the (principal, key) row in the change's own transaction: its id, or None when the key is
    taken. One statement: a concurrent request with the same key waits here until the other commits
    (then finds it taken and replays) or rolls back (then takes it)."""
    connection = session.connection()  # Core on the session's connection: no ORM execution layer
    return connection.execute(
        _RESERVE[connection.dialect.name],
        {"id": uuid.uuid4(), "principal": principal, "key": key, "fingerprint": fingerprint,
         "created_at": now, "expires_at": now + _ttl()},
    ).scalar_one_or_none()


def idempotent(
    session: Session, *, actor: Actor, handler: Handler, replay: Replay, key: str | None = None
) -> Response:
    """Run `handler` at most once per (principal, Idempotency-Key); a repeat gets `replay` of its resource.

    `key` is the header's unless given (the console's forms carry theirs in a hidden field)."""
    key = request.headers.get(HEADER) if key is None else key
    if key is None:
        return handler()[1]
    if not _VALID_KEY.match(key):
        raise InvalidPayload(errors={HEADER: ["1 to 255 visible ASCII characters"]})
    fingerprint, principal = _fingerprint(), principal_of(actor)
    while True:
        now = utcnow()
        with UnitOfWork(session) as unit:
            reservation = _reserve(session, principal=principal, key=key, fingerprint=fingerprint, now=now)
            if reservation is not None:
                return _run(session, unit, reservation, handler)
        existing = _find(session, principal, key)
        if existing is not None and existing.expires_at > now:
            return _replay(existing, fingerprint, replay)
        if existing is not None:  # expired: the key is new again
            session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == existing.id))
        # else the request that held it failed and rolled back meanwhile: nothing was changed, go ahead



def _run(session: Session, unit: UnitOfWork, reservation: uuid.UUID, handler: Handler) -> Response:
    """The change and the key's answer in one commit; on failure the key is not kept."""
    try:
        resource_id, response = handler()
    except Exception:
        # What the service committed before failing (an audited denial) stays; the key does not, so that
        # a corrected retry can use it.
        if unit.keep_checkpointed():
            session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == reservation))
            session.commit()
        raise
    if 200 <= response.status_code < 300:
        # Sent with the commit (no autoflush, so what the change left pending, an audit entry, is
        # inserted sealed after the chain's head is taken; on psycopg in the COMMIT's round trip).
        answer = {"reservation": reservation, "status_code": response.status_code,
                  "resource_id": str(resource_id), "location": response.headers.get("Location")}
        audit.send_with_commit(session, _ANSWER, answer)
    else:
        session.execute(sa.delete(IdempotencyKey).where(IdempotencyKey.id == reservation))
    session.commit()
    return response
