"""MGEC admins: the audit trail (filters, keyset pages), verifying its chain, and the last checkpoint.

Every read goes through the audit part's own services, so that the page is audited as the API's read is
(`audit:event:list`, `audit:chain:verify`); nothing here walks or hashes the chain itself.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

import marshmallow as ma
from flask import Response, request
from flask_babel import lazy_gettext as _l

from ..access import Scope
from ..audit import services as audit_services
from ..audit.actions import AuditAction
from ..audit.checkpoints import last_checkpoint, read_checkpoint
from ..auth import services as auth_services
from ..db import get_session
from ..errors import InvalidPayload, NotFound
from ..organisations import services as org_services
from ..privacy import get_privacy
from ..reports.schemas import report_day
from .forms import field_errors, load_form
from .i18n import LOCAL_TIME
from .labels import WORDS
from .shell import actor, bp, page, render

PAGE_SIZE = 50
FILTERS = ("action", "actor", "resource_type", "resource_id", "from", "to")
NOT_A_CHECKPOINT = _l("This is not a checkpoint of this deployment, or it was altered.")
NO_KEY = _l("No signing key is set (REFERRAL_API_AUDIT_SIGNING_KEY): a checkpoint cannot be checked.")


class TrailFilters(ma.Schema):
    """The page's filters: dates are days in Ulaanbaatar time, `to` included."""

    class Meta:
        unknown = ma.EXCLUDE

    action = ma.fields.String(validate=ma.validate.OneOf([a.value for a in AuditAction]))
    actor = ma.fields.String(validate=ma.validate.Length(max=100))
    resource_type = ma.fields.String(validate=ma.validate.Length(max=50))
    resource_id = ma.fields.String(validate=ma.validate.Length(max=100))
    # Days from 1900 to 2999, as a report's: the start of the day after `to`, and the start of `from` in
    # UTC, must still be dates (`to=9999-12-31` and `from=0001-01-01` were 500s).
    since = report_day("from", "The first day, in Ulaanbaatar time")
    until = report_day("to", "The last day, in Ulaanbaatar time (included)")
    cursor = ma.fields.String(validate=ma.validate.Length(max=512))


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=LOCAL_TIME)


def _actor_id(text: str) -> str:
    """A person's e-mail as their id (the trail names people by id); anything else as it is."""
    if "@" not in text:
        return text
    try:
        return str(auth_services.find_user(get_session(), text).id)
    except NotFound:
        return text  # matches no event


def _read_args(loaded: dict[str, Any]) -> dict[str, Any]:
    """The filters as audit.services.read_page takes them."""
    args: dict[str, Any] = {"limit": PAGE_SIZE, "cursor": loaded.get("cursor")}
    if loaded.get("actor"):
        loaded = {**loaded, "actor": _actor_id(loaded["actor"])}
    for ours, theirs in (("action", "action"), ("actor", "actor_id"), ("resource_type", "resource_type"),
                         ("resource_id", "resource_id")):
        if loaded.get(ours):
            args[theirs] = loaded[ours]
    if loaded.get("since"):
        args["since"] = _start_of(loaded["since"])
    if loaded.get("until"):
        args["until"] = _start_of(loaded["until"] + timedelta(days=1))
    return args


def trail_page(*, verified: audit_services.VerifyResult | None = None, status: int = 200,
               errors: dict[str, str] | None = None, checkpoint_text: str = "") -> Response:
    session = get_session()
    shown = {k: request.args.get(k, "").strip() for k in FILTERS}
    errors = dict(errors or {})
    events: list[Any] = []
    next_cursor = None
    try:
        loaded = load_form(TrailFilters(), {k: v for k, v in request.args.items() if v.strip()})
        events, next_cursor = audit_services.read_page(session, actor(), _read_args(loaded))
    except InvalidPayload as refused:
        session.rollback()
        errors.update(field_errors(refused.errors))
        status = 422 if status == 200 else status
    return render(
        "console/admin_audit.html",
        status=status,
        active="admin_audit",
        events=events,
        next_cursor=next_cursor,
        filters=shown,
        more_args={k: v for k, v in shown.items() if v},
        actions=[a.value for a in AuditAction],
        record_types=sorted(WORDS["record_type"], key=lambda t: str(WORDS["record_type"][t])),
        names={o.id: o.name for o in org_services.list_all(session)},
        people={str(u.id): u.email for u in auth_services.list_users(session)},
        clients={cl.client_id: cl.name for cl in auth_services.list_clients(session)},
        checkpoint=last_checkpoint(session, get_privacy().audit_signing_key),
        can_sign=get_privacy().audit_signing_key is not None,
        verified=verified,
        checkpoint_text=checkpoint_text,
        errors=errors,
        details=lambda d: json.dumps(d, ensure_ascii=False, sort_keys=True) if d else "",
    )


@bp.route("/admin/audit")
@page(Scope.ADMIN, Scope.AUDIT_READ)
def admin_audit() -> Response:
    """The audit trail newest first, filtered; reading it is itself audited (as the API's read)."""
    return trail_page()


def _checkpoint(text: str) -> tuple[int, str] | None:
    """A pasted checkpoint read as `audit verify --checkpoint` reads one (its signature checked)."""
    if not text:
        return None
    key = get_privacy().audit_signing_key
    if key is None:
        raise InvalidPayload(errors={"checkpoint": [str(NO_KEY)]})
    try:
        return read_checkpoint(json.loads(text), key)
    except (ValueError, InvalidPayload):
        raise InvalidPayload(errors={"checkpoint": [str(NOT_A_CHECKPOINT)]}) from None


@bp.route("/admin/audit/verify", methods=["POST"])
@page(Scope.ADMIN, Scope.AUDIT_READ)
def admin_audit_verify() -> Response:
    """Walk the whole chain now (against a pasted checkpoint, when one is given); audited."""
    session = get_session()
    text = request.form.get("checkpoint", "").strip()
    try:
        checkpoint = _checkpoint(text)
    except InvalidPayload as refused:
        return trail_page(status=422, errors={"checkpoint": refused.errors["checkpoint"][0]},
                          checkpoint_text=text)
    result = audit_services.verify_as(session, actor(), checkpoint=checkpoint)
    return trail_page(verified=result, checkpoint_text=text)
