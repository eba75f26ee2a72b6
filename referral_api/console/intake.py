"""Police and NGOs: the web intake form, their referrals, answering a question, withdrawing.

The form is loaded with the API's ReferralInSchema and submitted by referrals.services.submit, under
the same Idempotency-Key rules as POST /referrals (the key travels in a hidden field): consent, minors,
the duplicate check and the audit are the service's, never this view's.
"""

from __future__ import annotations

from typing import Any

from babel import Locale
from flask import Response, redirect, request, url_for

from ..access import Scope
from ..db import get_session
from ..errors import Conflict, DomainError, InvalidPayload, PreconditionFailed
from ..http import load
from ..referrals import services
from ..referrals.schemas import (
    SHAREABLE_KINDS,
    InformationInSchema,
    NoteInSchema,
    ReferralInSchema,
    ReferralListArgs,
)
from ..referrals.views import document, etag
from ..referrals.vocab import (
    Concern,
    ConsentMethod,
    ContactFamily,
    ExploitationType,
    LegalBasis,
    Need,
    Province,
    SafetyRisk,
    Sex,
    Source,
    Urgency,
)
from ..validators import COUNTRY_CODES
from . import i18n
from .forms import KEY_FIELD, field_errors, form_key, load_form, once
from .shell import actor, bp, page, render

LISTS = frozenset({"situation.exploitation_types", "situation.needs", "consent.share_with"})
COMMA_LISTS = frozenset({"person.aliases", "person.languages"})
SKIP = frozenset({"csrf_token", KEY_FIELD, "version"})


def _nest(form: dict[str, Any]) -> dict[str, Any]:
    """`person.given_name=…` becomes {"person": {"given_name": …}}; the consent answer a boolean. A name
    that is both a field and a group of fields (`person` beside `person.given_name`) is refused, named."""
    out: dict[str, Any] = {"person": {}, "situation": {}, "consent": {}}
    for name, value in form.items():
        group, _, leaf = name.rpartition(".")
        target = out.setdefault(group, {}) if group else out
        if not isinstance(target, dict) or isinstance(target.get(leaf), dict):
            raise InvalidPayload(errors={name: ["Unknown field."]})
        if name in COMMA_LISTS:
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif name == "person.estimated_age":
            value = int(value) if value.isdigit() else value
        elif name == "consent.given":
            value = {"yes": True, "no": False}.get(value, value)
        target[leaf] = value
    return out


def typed() -> dict[str, Any]:
    """What the officer typed: each field once (list fields as lists), empty fields left out."""
    out: dict[str, Any] = {}
    for name in request.form:
        if name in SKIP:
            continue
        values = [v.strip() for v in request.form.getlist(name) if v.strip()]
        if values:
            out[name] = values if name in LISTS else values[0]
    return out


def _countries() -> list[tuple[str, str]]:
    names = Locale.parse({"mn": "mn"}.get(i18n.language(), "en_GB")).territories
    return sorted(((c, names.get(c, c)) for c in COUNTRY_CODES), key=lambda pair: pair[1])


def intake_page(
    *, status: int = 200, form: dict[str, Any] | None = None, errors: dict[str, str] | None = None
) -> Response:
    """The intake form; after a refusal, with everything typed and each problem by its field."""
    who = actor()
    form = form if form is not None else {"source": who.organisation.kind, "person.nationality": "MN"}
    return render(
        "console/intake.html",
        status=status,
        active="intake",
        form=form,
        errors=errors or {},
        key=form_key(),
        countries=_countries(),
        vocab={
            "source": list(Source),
            "concern": list(Concern),
            "sex": list(Sex),
            "province": list(Province),
            "exploitation_type": list(ExploitationType),
            "urgency": list(Urgency),
            "need": list(Need),
            "safety_risk": list(SafetyRisk),
            "contact_family": list(ContactFamily),
            "consent_method": list(ConsentMethod),
            "legal_basis": list(LegalBasis),
            "shareable": SHAREABLE_KINDS,
        },
    )


@bp.route("/partner/referrals/new")
@page(Scope.REFERRALS_SUBMIT, mgec=False, partner=True)
def intake() -> Response:
    """An empty intake form."""
    return intake_page()


@bp.route("/partner/referrals/new", methods=["POST"])
@page(Scope.REFERRALS_SUBMIT, mgec=False, partner=True)
def intake_submit() -> Response:
    """Submit through the API's schema and service; a refusal keeps what was typed."""
    session, who = get_session(), actor()
    form = typed()
    try:
        data = load_form(ReferralInSchema(), _nest(form))

        def submit() -> tuple[object, str]:
            referral = services.submit(session, who, data=data)
            return referral.id, url_for("console.partner_referral", ref=str(referral.id))

        # a repeat: still visible to this officer (audited as a read)
        target = once(session, who, submit, lambda resource_id: services.read(session, who, ref=resource_id))
    except (InvalidPayload, Conflict) as refused:
        session.rollback()
        return intake_page(status=refused.status, form=form, errors=field_errors(refused.errors, paths=True))
    return redirect(target, code=303)


@bp.route("/partner/referrals")
@page(Scope.REFERRALS_READ, mgec=False, partner=True)
def partner_referrals() -> Response:
    """The organisation's referrals, newest first, with their status."""
    items, _next = services.list_for(get_session(), actor(), args=load(ReferralListArgs(), {}))
    return render(
        "console/partner_referrals.html",
        active="partner_referrals",
        items=[document(r, seen) for r, seen in items],
    )


def partner_referral_page(
    ref: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    conflict: bool = False,
) -> Response:
    """One of the organisation's referrals: status, questions and answers, what the officer may do."""
    referral, seen = services.read(get_session(), actor(), ref=ref)
    return render(
        "console/partner_referral.html",
        status=status,
        active="partner_referrals",
        doc=document(referral, seen),
        version=etag(referral),
        errors=errors or {},
        form=form or {},
        conflict=conflict,
    )


@bp.route("/partner/referrals/<ref>")
@page(Scope.REFERRALS_READ, mgec=False, partner=True)
def partner_referral(ref: str) -> Response:
    """One of the organisation's referrals (another organisation's is not found)."""
    return partner_referral_page(ref)


ANSWERS: dict[str, tuple[Any, Any]] = {
    "information": (InformationInSchema, services.provide_information),
    "withdraw": (NoteInSchema, services.withdraw),
}


@bp.route("/partner/referrals/<ref>/<action>", methods=["POST"])
@page(Scope.REFERRALS_SUBMIT, mgec=False, partner=True)
def partner_referral_action(ref: str, action: str) -> Response:
    """Answer MGEC's questions, or withdraw the referral: the API's schema, the same service call."""
    if action not in ANSWERS:
        return partner_referral_page(ref, status=404)
    schema, service = ANSWERS[action]
    session, who = get_session(), actor()
    form = typed()
    try:
        payload = load_form(schema(), form)
        service(session, who, ref=ref, data=payload, if_match=request.form.get("version") or None)
    except InvalidPayload as invalid:
        session.rollback()
        return partner_referral_page(ref, status=422, errors=field_errors(invalid.errors), form=form)
    except (Conflict, PreconditionFailed) as conflict:
        session.rollback()
        return partner_referral_page(ref, status=conflict.status, conflict=True)
    except DomainError:
        session.rollback()
        raise
    return redirect(url_for("console.partner_referral", ref=ref), code=303)
