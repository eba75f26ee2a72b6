"""MGEC admins: retention (what is past its time, then erasing it) and erasure on request.

Both call the services the command line and the API call (reports.retention: `retention run`,
`POST /cases/{id}/erase`, `POST /referrals/{id}/erase`), so the erasures are checked and audited as
theirs are; the signed-in admin is the actor. Nothing is erased without a confirmation posted.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app
from flask_babel import lazy_gettext as _l

from ..access import Scope
from ..db import get_session, utcnow
from ..errors import Conflict, InvalidPayload, NotFound
from ..reports import retention
from .forms import posted
from .shell import actor, bp, page, render

KINDS = ("case", "referral")
CONFIRM_RUN = _l("Tick the box to confirm: this cannot be undone.")
CHOOSE_REASON = _l("Please choose one of the reasons.")
CHOOSE_KIND = _l("Please choose a case or a referral.")
GIVE_REFERENCE = _l("Please give the reference.")
NO_RECORD = _l("There is no such record.")
ERASED_ALREADY = _l("This record is erased already.")


def _limits() -> retention.Limits:
    settings = current_app.config["SETTINGS"]
    return retention.Limits(settings.retention_rejected_days, settings.retention_closed_years)


def retention_page(*, status: int = 200, report: dict[str, Any] | None = None,
                   errors: dict[str, str] | None = None) -> Response:
    """What the retention period has run out for, as `retention run --dry-run` lists it (not audited,
    as that dry run is not), and the run's report once it ran."""
    due = retention.run(get_session(), now=utcnow(), limits=_limits(), dry_run=True)
    return render("console/admin_retention.html", status=status, active="admin_retention",
                  due=due, limits=_limits(), report=report, errors=errors or {})


@bp.route("/admin/retention")
@page(Scope.ADMIN)
def admin_retention() -> Response:
    """The dry run: the referrals and cases whose personal data the run would erase, counted by kind."""
    return retention_page()


@bp.route("/admin/retention", methods=["POST"])
@page(Scope.ADMIN)
def admin_retention_run() -> Response:
    """Run retention (the CLI's service, audited as its run is, the admin as actor), once confirmed."""
    if posted().get("confirm") != "yes":
        return retention_page(status=422, errors={"confirm": str(CONFIRM_RUN)})
    report = retention.run(get_session(), now=utcnow(), limits=_limits(), actor=actor())
    return retention_page(report=report)


def erasure_page(*, status: int = 200, form: dict[str, Any] | None = None,
                 errors: dict[str, str] | None = None, confirming: bool = False,
                 done: dict[str, Any] | None = None) -> Response:
    return render("console/admin_erasure.html", status=status, active="admin_erasure",
                  reasons=retention.REQUEST_REASONS, kinds=KINDS, form=form or {}, errors=errors or {},
                  confirming=confirming, done=done)


@bp.route("/admin/erasure")
@page(Scope.ADMIN)
def admin_erasure() -> Response:
    """Erase a person's data on request: the record, the reason code, then a confirmation."""
    return erasure_page()


def _problems(form: dict[str, Any]) -> dict[str, str]:
    problems = {}
    if form.get("kind") not in KINDS:
        problems["kind"] = str(CHOOSE_KIND)
    if not form.get("reference"):
        problems["reference"] = str(GIVE_REFERENCE)
    if form.get("reason") not in retention.REQUEST_REASONS:
        problems["reason"] = str(CHOOSE_REASON)
    return problems


@bp.route("/admin/erasure", methods=["POST"])
@page(Scope.ADMIN)
def admin_erasure_post() -> Response:
    """First the confirmation page; with `confirm=yes`, the API's erasure (audited, admin as actor)."""
    form = {k: v for k, v in posted().items() if k in ("kind", "reference", "reason", "confirm")}
    if problems := _problems(form):
        return erasure_page(status=422, form=form, errors=problems)
    if form.get("confirm") != "yes":
        return erasure_page(form=form, confirming=True)
    erase = retention.erase_case if form["kind"] == "case" else retention.erase_referral
    session = get_session()
    try:
        done = erase(session, actor(), form["reference"], form["reason"])
    except (NotFound, Conflict, InvalidPayload) as refused:
        session.rollback()
        said = ERASED_ALREADY if isinstance(refused, Conflict) else NO_RECORD
        return erasure_page(status=refused.status, form=form, errors={"reference": str(said)})
    return erasure_page(done=done)
