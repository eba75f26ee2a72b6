"""Reports (anonymised aggregates, small cells suppressed) and the shelters' occupancy."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_babel import gettext as _
from sqlalchemy.orm import Session

from ..access import Scope
from ..cases import board as case_board
from ..cases import shelters as shelters_service
from ..db import get_session
from ..errors import InvalidPayload
from ..http import load
from ..reports import export, summary
from ..reports.schemas import FIRST_DAY, LAST_DAY, ExportArgsSchema, SummaryArgsSchema
from .charts import bar_chart
from .forms import field_errors
from .i18n import country
from .labels import word
from .shell import actor, bp, page, render

GROUPS = ("year", "identified_country", "exploitation_type", "sex", "age_band", "source", "entry_point")
# The export form's fields: the API parameter each gives, and the day of the year it stands for.
EXPORT_YEARS = {"from_year": ("from", "01-01"), "to_year": ("to", "12-31")}
_EXPORT_FIELD = {key: name for name, (key, _day) in EXPORT_YEARS.items()}
_VOCAB = {
    "exploitation_type": "exploitation_type",
    "sex": "sex",
    "age_band": "age_band",
    "source": "source",
    "entry_point": "entry_point",
}


def _group_label(dimension: str, value: Any) -> str:
    if value is None:
        return _("None recorded")
    if dimension == "identified_country":
        return country(value)
    return word(_VOCAB[dimension], value) if dimension in _VOCAB else str(value)


def _period_args() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k in ("from", "to") and v}


def _charts(session: Session, *, group: str, rows: list[tuple[str, dict]], by_country: dict) -> list:
    """The three charts of the reports page: by the chosen group, open cases by stage, days to arrival."""
    return [
        bar_chart(
            _("Referrals and accepted cases by %(group)s", group=word("report_group", group)),
            [_("Referrals"), _("Accepted cases")],
            [(label, [r["referrals"], r["accepted_cases"]]) for label, r in rows],
        ),
        bar_chart(
            _("Open cases by stage"),
            [_("Cases")],
            [
                (word("stage", s), [n])
                for s, (n, _h) in case_board.stage_counts(session, actor()).items()
                if s.value != "closed"
            ],
        ),
        bar_chart(
            _("Median days from referral to arrival, by country"),
            [_("Days")],
            [
                (
                    country(r["group"]["identified_country"]) or _("None recorded"),
                    [r["durations"]["to_arrival"]["median_days"]],
                )
                for r in by_country["rows"]
            ],
            unit=_("days"),
        ),
    ]


@bp.route("/reports")
@page(Scope.REPORTS_READ)
def reports() -> Response:
    """Counts by group, durations, and three charts; suppressed cells shown as suppressed."""
    session, k = get_session(), current_app.config["SETTINGS"].report_min_cell
    group = request.args.get("group_by") if request.args.get("group_by") in GROUPS else "year"
    try:
        args = load(SummaryArgsSchema(), {"group_by": group, **_period_args()})
    except InvalidPayload as invalid:
        return _refused(group, field_errors(invalid.errors))
    report = summary.summary(session, summary.SummaryQuery((group,), args["date_from"], args["date_to"]), k=k)
    by_country = summary.summary(
        session, summary.SummaryQuery(("identified_country",), args["date_from"], args["date_to"]), k=k
    )
    rows = [(_group_label(group, r["group"][group]), r) for r in report["rows"]]
    charts = _charts(session, group=group, rows=rows, by_country=by_country)
    return _page(group, report=report, rows=rows, charts=charts)


def _refused(group: str, errors: dict[str, str]) -> Response:
    """The reports page without numbers: the fields named in `errors` are marked (422)."""
    return _page(group, status=422, errors=errors)


def _page(group: str, *, status: int = 200, errors: dict[str, str] | None = None, report: dict | None = None,
          rows: list | None = None, charts: list | None = None) -> Response:
    return render("console/reports.html", status=status, active="reports", errors=errors or {}, groups=GROUPS,
                  group=group, period=_period_args(), years=_export_years(), report=report, rows=rows or [],
                  charts=charts or [])


def _export_years() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k in EXPORT_YEARS and v}


def _export_period() -> dict[str, str]:
    """The export form names whole years (the export takes nothing else): the API's `from` is the first
    year's 1 January, its `to` the last year's 31 December. Anything but a year of report days is refused."""
    period, problems = {}, {}
    for name, (key, first_or_last) in EXPORT_YEARS.items():
        year = request.args.get(name, "").strip()
        if year and not (year.isascii() and year.isdigit() and FIRST_DAY.year <= int(year) <= LAST_DAY.year):
            problems[name] = [f"Not a year from {FIRST_DAY.year} to {LAST_DAY.year}."]
        elif year:
            period[key] = f"{year}-{first_or_last}"
    if problems:
        raise InvalidPayload(errors=problems)
    return period


@bp.route("/reports/ctdc.csv")
@page(Scope.REPORTS_READ)
def ctdc_export() -> Response:
    """The CTDC export (one anonymised row per person) of whole calendar years, as the API serves it."""
    try:
        args = load(ExportArgsSchema(), _export_period())
    except InvalidPayload as invalid:
        named = {_EXPORT_FIELD.get(name, name): messages for name, messages in invalid.errors.items()}
        return _refused("year", field_errors(named))
    k = current_app.config["SETTINGS"].report_min_cell
    body = export.export_csv(
        get_session(), actor(), k=k, date_from=args["date_from"], date_to=args["date_to"]
    )
    return Response(
        body, mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="ctdc.csv"'}
    )


@bp.route("/shelters")
@page(Scope.CASES_READ)
def shelters() -> Response:
    """Every shelter: beds, beds taken, beds free."""
    rows = shelters_service.shelters(get_session(), actor())
    return render("console/shelters.html", active="shelters", rows=rows)
