"""Cases: the board by stage, the list, and the case page with its timeline and forms."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import marshmallow as ma
from flask import Response, redirect, request, url_for

from ..access import Actor, Scope
from ..cases import board as case_board
from ..cases import care, moves, participants
from ..cases import services as case_services
from ..cases import shelters as shelters_service
from ..cases.models import ServiceKind
from ..cases.schemas import (
    CaseListArgs,
    ParticipantInSchema,
    ReasonInSchema,
    ResumeInSchema,
    ServiceInSchema,
    TransitionInSchema,
)
from ..cases.stages import MOVES, ParticipantRole, Stage
from ..cases.views import document, etag, event_document, service_document
from ..db import get_session, utcnow
from ..documents.models import ParentType
from ..errors import Conflict, InvalidPayload, PreconditionFailed
from ..http import load
from ..organisations import services as org_services
from ..organisations.models import OrganisationKind
from . import documents, i18n
from .forms import field_errors, form_key, load_form, once, posted
from .queue import organisation_names
from .shell import actor, bp, page, render, render_error


@bp.route("/cases")
@page(Scope.CASES_READ)
def board() -> Response:
    """How many cases stand at each stage (closed ones hidden unless asked for)."""
    counts = case_board.stage_counts(get_session(), actor())
    show_closed = request.args.get("closed") == "1"
    stages = [s for s in Stage if show_closed or s is not Stage.CLOSED]
    return render(
        "console/board.html",
        active="cases",
        counts=counts,
        stages=stages,
        show_closed=show_closed,
        total=sum(n for s, (n, _h) in counts.items() if s is not Stage.CLOSED),
        on_hold=sum(h for s, (_n, h) in counts.items() if s is not Stage.CLOSED),
    )


@bp.route("/cases/list")
@page(Scope.CASES_READ)
def case_list() -> Response:
    """Cases, overdue first then newest first, filtered by stage, hold and participant."""
    session, who = get_session(), actor()
    wanted = {
        k: v for k, v in request.args.items() if v and k in ("stage", "on_hold", "participant", "cursor")
    }
    try:
        args = load(CaseListArgs(), wanted)
    except InvalidPayload:
        return render_error(400)
    overdue, items, next_cursor = case_board.overdue_first(session, who, args)
    return render(
        "console/case_list.html",
        active="cases",
        items=overdue + items,
        next_cursor=next_cursor,
        args=wanted,
        more_args={k: v for k, v in wanted.items() if k != "cursor"},
        stages=list(Stage),
        organisations=org_services.search(session),
        names=organisation_names(session),
    )


def move_forms(who: Actor, stage: Stage, targets: list[str]) -> list[dict[str, Any]]:
    """For each stage the case may move to, exactly the details that move records; a move this person may
    not make (a reopening, unless an MGEC admin's: moves.may_make) is not offered."""
    forms = []
    for target in targets:
        move = MOVES[(stage, Stage(target))]
        if not moves.may_make(who, move):
            continue
        fields = []
        for name, field in move.details().fields.items():
            kind = (
                "date"
                if isinstance(field, ma.fields.Date)
                else "choice"
                if isinstance(field, ma.fields.Enum)
                else "text"
            )
            choices = [e.value for e in field.enum] if isinstance(field, ma.fields.Enum) else []
            fields.append({"name": name, "kind": kind, "choices": choices})
        forms.append(
            {"target": target, "kind": move.kind.value, "fields": fields, "needs_note": move.needs_note}
        )
    return forms


def case_page(
    ref: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    conflict: bool = False,
    open_form: str = "",
    form: dict[str, Any] | None = None,
    document_errors: dict[str, str] | None = None,
) -> Response:
    """The case as MGEC staff see it: header, timeline, participants, services, documents, moves."""
    session, who = get_session(), actor()
    case, seen, role, person = case_services.read(session, who, ref)
    doc = document(case, seen, role, case_services.participants_of(session, case), person)
    events, staff = case_services.timeline(session, who, ref)
    services = [service_document(s, note=care.shows_note(session, who, s))
                for s in care.list_services(session, who, ref)]
    query = request.args.get("org_q", "")
    return render(
        "console/case.html",
        status=status,
        active="cases",
        doc=doc,
        version=etag(case),
        timeline=[event_document(e, staff=staff) for e in events],
        services=services,
        shelters=shelters_service.shelters(session, who),
        names=organisation_names(session),
        organisations=org_services.search(session, text=query, exclude_kinds=(OrganisationKind.MGEC,)),
        org_query=query,
        roles=list(ParticipantRole),
        service_kinds=list(ServiceKind),
        move_forms=move_forms(who, case.stage, doc["allowed_stages"]),
        errors=errors or {},
        conflict=conflict,
        open_form=open_form,
        form=form or {},
        service_key=form_key(),
        today=i18n.day(utcnow()),
        **documents.section(session, who, ParentType.CASE, str(case.id), errors=document_errors),
    )


@bp.route("/cases/<ref>")
@page(Scope.CASES_READ)
def case(ref: str) -> Response:
    """One case (its reading is audited, as through the API)."""
    return case_page(ref)


def _occurred_at(raw: str | None) -> str | None:
    """A past day becomes midday of that day in Ulaanbaatar; today (or nothing) is now."""
    if not raw:
        return None
    try:
        day = datetime.strptime(raw, "%Y-%m-%d").date()
    except ValueError:
        return raw  # the schema names the field
    if day >= utcnow().astimezone(i18n.LOCAL_TIME).date():
        return None
    return datetime.combine(day, time(12), tzinfo=i18n.LOCAL_TIME).isoformat()


def transition_data(form: dict[str, Any]) -> dict[str, Any]:
    details = {k[2:]: v for k, v in form.items() if k.startswith("d.")}
    data = {k: v for k, v in form.items() if not k.startswith("d.") and k != "occurred_on"}
    when = _occurred_at(form.get("occurred_on"))
    if when:
        data["occurred_at"] = when
    return {**data, "details": details}


def _participant(session, who, ref, data, *, if_match=None):
    participants.add_participant(session, who, ref, data)


def _remove(session, who, ref, data, *, if_match=None):
    participants.remove_participant(session, who, ref, data.get("organisation_id", ""))


def _service(session, who, ref, data, *, if_match=None):
    """Once per form sent (its idempotency key): a double click records one service, takes one bed."""
    once(
        session,
        who,
        lambda: (care.add_service(session, who, ref, data).id, url_for("console.case", ref=ref)),
        lambda service_id: care.get_service(session, who, ref, service_id),
    )


WRITES: dict[str, tuple[Any, Any]] = {
    "move": (TransitionInSchema, moves.transition),
    "hold": (ReasonInSchema, moves.hold),
    "resume": (ResumeInSchema, moves.resume),
    "participants": (ParticipantInSchema, _participant),
    "remove-participant": (None, _remove),
    "services": (ServiceInSchema, _service),
}


@bp.route("/cases/<ref>/<action>", methods=["POST"])
@page(Scope.CASES_UPDATE)
def case_action(ref: str, action: str) -> Response:
    """A write to the case through the API's schema and the same service function."""
    if action not in WRITES:
        return render_error(404)
    schema, service = WRITES[action]
    session, who = get_session(), actor()
    form = posted()
    data = transition_data(form) if action == "move" else dict(form)
    target = form.get("to", "")
    try:
        payload = load_form(schema(), data) if schema else data
        service(session, who, ref, payload, if_match=request.form.get("version") or None)
    except (InvalidPayload, Conflict, PreconditionFailed) as refused:
        session.rollback()
        if not refused.errors:  # a concurrent change (409/412): show the current state
            return case_page(ref, status=refused.status, conflict=True)
        found = field_errors(refused.errors)
        if action == "move":
            found = {f"{target}-{k}": v for k, v in found.items()}
        return case_page(
            ref,
            status=refused.status,
            errors=found,
            open_form=f"{action}-{target}" if target else action,
            form=form,
        )
    return redirect(url_for("console.case", ref=ref), code=303)


documents.RECORD_PAGES[ParentType.CASE] = case_page
