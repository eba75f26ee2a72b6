"""The review queue and the referral page with its actions (a coordinator's day)."""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, request, url_for
from sqlalchemy.orm import Session

from ..access import Actor, Scope
from ..db import get_session, utcnow
from ..documents.models import ParentType
from ..errors import Conflict, DomainError, InvalidPayload, PreconditionFailed
from ..organisations import services as org_services
from ..referrals import queue as referral_queue
from ..referrals import services
from ..referrals.models import Referral
from ..referrals.schemas import AcceptInSchema, RejectInSchema, RequestInformationInSchema
from ..referrals.states import ReferralStatus
from ..referrals.views import PERSON_FIELDS, document, etag
from ..referrals.vocab import RejectReason, Source, Urgency
from . import documents, i18n
from .forms import field_errors, load_form, posted
from .labels import WORDS
from .shell import actor, bp, page, render

FIELD_VOCAB = {
    "sex": "sex",
    "date_of_birth": "day",
    "identified_on": "day",
    "exploitation_types": "exploitation_type",
    "urgency": "urgency",
    "needs": "need",
    "safety_risk": "safety_risk",
    "contact_family": "contact_family",
    "home_province": "province",
    "nationality": "country",
    "identified_country": "country",
    "languages": "language",
}
SHAREABLE = ("police", "embassy", "iom", "ngo", "government", "service_provider")


def organisation_names(session: Session) -> dict[str, str]:
    """Organisation names by id (as text: the dumped documents carry ids as text)."""
    return {str(o.id): o.name for o in org_services.list_all(session)}


def _filters() -> dict[str, Any]:
    choices = {
        "status": [s.value for s in referral_queue.QUEUE_STATUSES],
        "source": [s.value for s in Source],
        "urgency": [u.value for u in Urgency],
    }
    out: dict[str, Any] = {}
    for name, allowed in choices.items():
        if request.args.get(name) in allowed:
            out[name] = request.args[name]
    country = request.args.get("identified_country", "").strip().upper()
    if len(country) == 2 and country.isalpha():
        out["identified_country"] = country
    return out


@bp.route("/queue")
@page(Scope.REFERRALS_READ)
def queue() -> Response:
    """Referrals waiting for MGEC, most urgent and oldest first, with filters."""
    session, who = get_session(), actor()
    filters = _filters()
    rows = referral_queue.review_queue(session, who, filters)
    now, names = utcnow(), organisation_names(session)
    items = [
        {
            "referral": r,
            "partner": names.get(str(r.submitted_by_organisation_id), ""),
            "age": i18n.ago(r.submitted_at, now),
            "own_organisation": r.submitted_by_organisation_id == who.organisation_id,
            "submitted_by_you": referral_queue.submitted_by_actor(who, r),
        }
        for r in rows
    ]
    return render(
        "console/queue.html",
        active="queue",
        items=items,
        filters=filters,
        statuses=referral_queue.QUEUE_STATUSES,
        sources=list(Source),
        urgencies=list(Urgency),
    )


def _duplicates(session: Session, who: Actor, referral: Referral) -> list[dict[str, Any]]:
    """Possible duplicates, each read (and audited) as the API reads a referral, with its reasons."""
    if not who.has(Scope.REFERRALS_REVIEW):
        return []
    out = []
    for match in services.matches(session, who, ref=str(referral.id)):
        other, seen = services.read(session, who, ref=str(match.referral.id))
        out.append({"doc": document(other, seen), "reasons": sorted(match.reasons), "score": match.score})
    return out


def referral_page(
    ref: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    conflict: bool = False,
    open_action: str = "",
    document_errors: dict[str, str] | None = None,
) -> Response:
    """The referral as MGEC staff see it, its duplicates, documents and the actions allowed now."""
    session, who = get_session(), actor()
    referral, seen = services.read(session, who, ref=ref)
    doc = document(referral, seen)
    may_decide = who.has(Scope.REFERRALS_REVIEW)
    four_eyes = referral_queue.submitted_by_actor(who, referral)
    actions = [a for a in doc.get("allowed_actions", []) if may_decide]
    if four_eyes:
        actions = [a for a in actions if a not in ("accept", "reject")]
    duplicates = _duplicates(session, who, referral)
    link_cases = [d["doc"]["case_id"] for d in duplicates if d["doc"].get("case_id")]
    return render(
        "console/referral.html",
        status=status,
        active="queue",
        doc=doc,
        version=etag(referral),
        partner=organisation_names(session).get(str(referral.submitted_by_organisation_id), ""),
        duplicates=duplicates,
        actions=actions,
        four_eyes=four_eyes,
        errors=errors or {},
        form=form or {},
        conflict=conflict,
        open_action=open_action,
        reject_reasons=list(RejectReason),
        link_cases=link_cases,
        is_open=referral.status
        not in (ReferralStatus.ACCEPTED, ReferralStatus.REJECTED, ReferralStatus.WITHDRAWN),
        case_reference=_case_reference(session, referral),
        vocab=FIELD_VOCAB,
        person_fields=PERSON_FIELDS,
        shareable=SHAREABLE,
        words_for=WORDS["field"],
        **documents.section(session, who, ParentType.REFERRAL, str(referral.id), errors=document_errors),
    )


def _case_reference(session: Session, referral: Referral) -> str:
    from ..cases.models import Case

    case = session.get(Case, referral.case_id) if referral.case_id else None
    return case.reference if case is not None else ""


@bp.route("/referrals/<ref>")
@page(Scope.REFERRALS_READ)
def referral(ref: str) -> Response:
    """One referral: person, situation, consent, legal basis, questions, duplicates, actions."""
    return referral_page(ref)


def _review(session, who, *, ref, data, if_match=None):
    return services.review(session, who, ref=ref, if_match=if_match)


def _accept_data(form: dict[str, Any]) -> dict[str, Any]:
    target = form.pop("target", "new")
    other = form.pop("case_ref", "")
    if target == "other":
        form["case_id"] = other
    elif target != "new":
        form["case_id"] = target
    return form


ACTIONS: dict[str, tuple[Any, Any]] = {
    "review": (None, _review),
    "accept": (AcceptInSchema, services.accept),
    "reject": (RejectInSchema, services.reject),
    "request-information": (RequestInformationInSchema, services.request_information),
}


@bp.route("/referrals/<ref>/<action>", methods=["POST"])
@page(Scope.REFERRALS_REVIEW)
def referral_action(ref: str, action: str) -> Response:
    """Start review, accept, reject or ask questions: the API's schema, the same service call."""
    if action not in ACTIONS:
        return referral_page(ref, status=404)
    schema, service = ACTIONS[action]
    session, who = get_session(), actor()
    form = posted()
    data = _accept_data(dict(form)) if action == "accept" else dict(form)
    try:
        payload = load_form(schema(), data) if schema else {}
        moved = service(session, who, ref=ref, data=payload, if_match=request.form.get("version") or None)
    except InvalidPayload as invalid:
        session.rollback()
        return referral_page(
            ref, status=422, errors=field_errors(invalid.errors), form=form, open_action=action
        )
    except (Conflict, PreconditionFailed) as conflict:
        session.rollback()
        return referral_page(ref, status=conflict.status, conflict=True)
    except DomainError:
        session.rollback()
        raise
    if action == "accept" and moved.case_id is not None:
        return redirect(url_for("console.case", ref=str(moved.case_id)), code=303)
    return redirect(url_for("console.referral", ref=str(moved.id)), code=303)


documents.RECORD_PAGES[ParentType.REFERRAL] = referral_page
