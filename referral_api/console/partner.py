"""Partners' officers: the cases their organisation takes part in, and the moves their role owns.

Everything a partner sees comes from the case read services (visibility, consent, the timeline as a
participant's view of it); every move goes through moves.transition, which decides who may make it.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for

from ..access import Scope
from ..cases import moves
from ..cases import persons as case_persons
from ..cases import services as case_services
from ..cases.schemas import CaseListArgs, TransitionInSchema
from ..cases.stages import MOVES, MoveKind, Stage
from ..cases.views import case_etag, document, event_document
from ..db import get_session
from ..errors import Conflict, InvalidPayload, PreconditionFailed
from ..http import load
from ..organisations.models import OrganisationKind
from .cases import move_forms, transition_data
from .forms import field_errors, load_form, posted
from .queue import organisation_names
from .shell import actor, bp, page, render, render_error

# Organisations that refer people to MGEC through the intake form (embassies follow cases only).
REFERRING_KINDS = frozenset(k.value for k in OrganisationKind) - {"mgec", "embassy"}


def waits_for(stage: str) -> dict[str, Any] | None:
    """The next forward step from `stage` and who records it (no roles: MGEC)."""
    for (source, target), move in MOVES.items():
        if source.value == stage and move.kind is MoveKind.FORWARD:
            return {"stage": target.value, "by": sorted(r.value for r in move.by)}
    return None


@bp.route("/partner/cases")
@page(Scope.CASES_READ, mgec=False, partner=True)
def partner_cases() -> Response:
    """The cases the officer's organisation takes part in, newest first."""
    wanted = {k: v for k, v in request.args.items() if v and k in ("stage", "on_hold", "cursor")}
    try:
        args = load(CaseListArgs(), wanted)
    except InvalidPayload:
        return render_error(400)
    items, next_cursor = case_services.list_for(get_session(), actor(), args)
    rows = [
        {"doc": document(case, seen, role), "waits": waits_for(case.stage.value)}
        for case, seen, role in items
    ]
    return render(
        "console/partner_cases.html",
        active="partner_cases",
        rows=rows,
        next_cursor=next_cursor,
        args=wanted,
        more_args={k: v for k, v in wanted.items() if k != "cursor"},
        stages=list(Stage),
    )


def partner_case_page(
    ref: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    conflict: bool = False,
    open_form: str = "",
    form: dict[str, Any] | None = None,
) -> Response:
    """One case as a participant sees it: status, the person as far as consent lets, its timeline."""
    session, who = get_session(), actor()
    case, seen, role, person = case_services.read(session, who, ref)
    doc = document(case, seen, role, None, person)
    events, staff = case_services.timeline(session, who, ref)
    return render(
        "console/partner_case.html",
        status=status,
        active="partner_cases",
        doc=doc,
        version=case_etag(case, seen, role, covered=case_persons.covered(who, case)),
        waits=waits_for(case.stage.value),
        timeline=[event_document(e, staff=staff) for e in events],
        names=organisation_names(session),
        move_forms=move_forms(who, case.stage, doc["allowed_stages"]),
        move_url=url_for("console.partner_move", ref=ref),
        errors=errors or {},
        conflict=conflict,
        open_form=open_form,
        form=form or {},
    )


@bp.route("/partner/cases/<ref>")
@page(Scope.CASES_READ, mgec=False, partner=True)
def partner_case(ref: str) -> Response:
    """One case (404 when the organisation does not take part in it)."""
    return partner_case_page(ref)


@bp.route("/partner/cases/<ref>/move", methods=["POST"])
@page(Scope.CASES_UPDATE, mgec=False, partner=True)
def partner_move(ref: str) -> Response:
    """Record a move the officer's role owns (verification, travel documents, travel)."""
    session, who = get_session(), actor()
    form = posted()
    target = form.get("to", "")
    try:
        payload = load_form(TransitionInSchema(), transition_data(form))
        moves.transition(session, who, ref, payload, if_match=request.form.get("version") or None)
    except (InvalidPayload, Conflict, PreconditionFailed) as refused:
        session.rollback()
        if not refused.errors:
            return partner_case_page(ref, status=refused.status, conflict=True)
        found = {f"{target}-{k}": v for k, v in field_errors(refused.errors).items()}
        return partner_case_page(
            ref, status=refused.status, errors=found, open_form=f"move-{target}", form=form
        )
    return redirect(url_for("console.partner_case", ref=ref), code=303)
