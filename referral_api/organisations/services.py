"""Use cases on organisations: create, find, list, suspend."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..audit import AuditAction, record
from ..errors import Conflict, NotFound
from ..paging import cursor_text, decode_cursor, page
from .models import Organisation, OrganisationKind, OrganisationStatus


def create(session: Session, *, name: str, kind: OrganisationKind, country: str,
           actor: Any = None) -> Organisation:
    """Create an organisation; a second `mgec` or a taken name is a Conflict. `actor` None: the CLI."""
    if kind is OrganisationKind.MGEC and session.scalar(
        sa.select(Organisation.id).where(Organisation.kind == OrganisationKind.MGEC)
    ):
        raise Conflict("An mgec organisation exists already; there is exactly one.",
                       errors={"kind": ["only one organisation can be of kind mgec"]})
    if session.scalar(sa.select(Organisation.id).where(Organisation.name == name)):
        raise Conflict(f"An organisation named {name!r} exists already.", errors={"name": ["taken"]})
    org = Organisation(id=uuid.uuid4(), name=name, kind=kind, country=country)
    session.add(org)
    try:
        _record(session, actor, AuditAction.ORGANISATION_CREATE, org)
        session.commit()
    except IntegrityError:
        # A concurrent create won the race on the unique name or the one-mgec index.
        session.rollback()
        raise Conflict("The organisation conflicts with one created at the same time.") from None
    return org


def find(session: Session, ref: str) -> Organisation:
    """An organisation by id or exact name."""
    org = None
    with contextlib.suppress(ValueError):
        org = session.get(Organisation, uuid.UUID(ref))
    if org is None:
        org = session.scalar(sa.select(Organisation).where(Organisation.name == ref))
    if org is None:
        raise NotFound(f"No organisation with id or name {ref!r}.")
    return org


def list_all(session: Session) -> list[Organisation]:
    return list(session.scalars(sa.select(Organisation).order_by(Organisation.name)))


def mgec(session: Session) -> Organisation | None:
    return session.scalar(sa.select(Organisation).where(Organisation.kind == OrganisationKind.MGEC))


def suspend(session: Session, ref: str, *, actor: Any = None) -> Organisation:
    """Suspend an organisation: its tokens stop working within
    TOKEN_CACHE_SECONDS (default 5 s). Never MGEC, the home organisation (409), from the console, the API
    or the command line alike: every MGEC person and system, its admins included, would be locked out; a
    person is deactivated, a client revoked instead."""
    org = find(session, ref)
    if org.kind is OrganisationKind.MGEC:
        raise Conflict("MGEC, the home organisation, cannot be suspended: all of its people and systems "
                       "would be locked out. Deactivate a person or revoke a client instead.",
                       errors={"status": ["MGEC cannot be suspended"]})
    org.suspend()
    _record(session, actor, AuditAction.ORGANISATION_SUSPEND, org)
    session.commit()
    return org


def activate(session: Session, ref: str, *, actor: Any = None) -> Organisation:
    """Re-activate a suspended organisation."""
    org = find(session, ref)
    org.activate()
    _record(session, actor, AuditAction.ORGANISATION_ACTIVATE, org)
    session.commit()
    return org


def require_totp(session: Session, ref: str, required: bool, *, actor: Any = None) -> Organisation:
    """Whether the organisation's people must sign in with a TOTP code; an embassy's always must."""
    org = find(session, ref)
    if org.kind is OrganisationKind.EMBASSY and not required:
        raise Conflict("An embassy's officers always sign in with a TOTP code.",
                       errors={"totp_required": ["always required for an embassy"]})
    org.totp_required = required
    _record(session, actor, AuditAction.ORGANISATION_REQUIRE_TOTP, org, totp_required=required)
    session.commit()
    return org


def _record(session: Session, actor: Any, action: AuditAction, org: Organisation, **more: Any) -> None:
    # An organisation's name is not personal data; its kind and country help read the trail.
    record(session, actor=actor, action=action, resource_type="organisation", resource_id=org.id,
           details={"kind": str(org.kind), "country": org.country, **more})


def search(
    session: Session, *, text: str = "", exclude_kinds: tuple[OrganisationKind, ...] = (),
    include_suspended: bool = False, visible: sa.ColumnElement[bool] | None = None,
    after: str | None = None, limit: int = 200,
) -> list[Organisation]:
    """Organisations whose name contains `text` (any case), by name, after the name `after`: the
    console's picker and the API's directory. Active ones only unless `include_suspended`; `visible`
    narrows them to what the caller may know of."""
    query = sa.select(Organisation)
    if not include_suspended:
        query = query.where(Organisation.status == OrganisationStatus.ACTIVE)
    if text.strip():
        query = query.where(sa.func.lower(Organisation.name).contains(text.strip().lower(), autoescape=True))
    if exclude_kinds:
        query = query.where(Organisation.kind.not_in(exclude_kinds))
    if visible is not None:
        query = query.where(visible)
    if after is not None:
        query = query.where(Organisation.name > after)  # names are unique: the name alone is the key
    return list(session.scalars(query.order_by(Organisation.name).limit(limit)))


def directory_page(
    session: Session, *, text: str, limit: int, cursor: str | None, include_suspended: bool,
    visible: sa.ColumnElement[bool] | None,
) -> tuple[list[Organisation], str | None]:
    """A keyset page of `search()` (by name), with the cursor of the next page."""
    after = None
    if cursor:
        (after,) = decode_cursor(cursor, size=1)
        after = cursor_text(after)
    rows = search(session, text=text, include_suspended=include_suspended, visible=visible, after=after,
                  limit=limit + 1)
    return page(rows, limit=limit, key=lambda o: [o.name])
