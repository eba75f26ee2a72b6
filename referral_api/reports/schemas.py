"""What the reports API takes and shows."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import marshmallow as ma

from .retention import REQUEST_REASONS
from .summary import COUNTS, DIMENSIONS

# The days a report may start or end on: the day after `to` must still be a date (9999-12-31 was a 500).
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2999, 12, 31)


def report_day(data_key: str, description: str, *also: Callable[[date], None]) -> ma.fields.Date:
    """`from` or `to` of a report: a day from 1900 to 2999 (and whatever `also` checks)."""
    return ma.fields.Date(
        data_key=data_key,
        load_default=None,
        validate=[
            ma.validate.Range(
                min=FIRST_DAY, max=LAST_DAY, error=f"Must be a day from {FIRST_DAY} to {LAST_DAY}."
            ),
            *also,
        ],
        metadata={"description": description},
    )


def whole_year_edge(name: str, month: int, day: int, words: str) -> Callable[[date], None]:
    """The CTDC export's `from` (a 1 January) or `to` (a 31 December): its only time quasi-identifier is the
    year of registration, so a period cutting a year would single out the people of the cut days."""

    def check(value: date) -> None:
        if (value.month, value.day) != (month, day):
            raise ma.ValidationError(
                f"The export covers whole calendar years: `{name}` must be {words}, "
                f"such as {value.year}-{month:02d}-{day:02d}."
            )

    return check


class SummaryArgsSchema(ma.Schema):
    """`GET /api/v1/reports/summary` parameters; unknown ones are refused."""

    class Meta:
        unknown = ma.RAISE

    group_by = ma.fields.String(
        load_default="",
        validate=ma.validate.Length(max=200),
        metadata={"description": "comma-separated dimensions: " + ", ".join(DIMENSIONS)},
    )
    date_from = report_day("from", "first submission day")
    date_to = report_day("to", "last submission day")

    @ma.validates("group_by")
    def _known(self, value: str, **_: object) -> None:
        names = [v for v in value.split(",") if v] if value else []
        unknown = [n for n in names if n not in DIMENSIONS]
        if unknown:
            raise ma.ValidationError(
                f"Unknown dimensions: {', '.join(unknown)}; known: {', '.join(DIMENSIONS)}."
            )
        if len(set(names)) != len(names):
            raise ma.ValidationError("A dimension is named twice.")

    @ma.validates_schema
    def _ordered(self, data: dict, **_: object) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ma.ValidationError("`from` is after `to`.", field_name="from")


class DeadlinesArgsSchema(ma.Schema):
    """`GET /api/v1/reports/deadlines` parameters; unknown ones are refused."""

    class Meta:
        unknown = ma.RAISE

    date_from = report_day("from", "first day (of the decision; of the stay's start)")
    date_to = report_day("to", "last day (of the decision; of the stay's start)")

    _ordered = SummaryArgsSchema._ordered


class DecisionMonthSchema(ma.Schema):
    month = ma.fields.String(metadata={"description": "YYYY-MM of the decision"})
    decided = ma.fields.Integer(allow_none=True)
    in_time = ma.fields.Integer(allow_none=True)
    late = ma.fields.Integer(allow_none=True)
    share_in_time = ma.fields.Float(allow_none=True)
    suppressed = ma.fields.List(ma.fields.String())


class StageDaysSchema(ma.Schema):
    stage = ma.fields.String()
    median_days = ma.fields.Float(allow_none=True)
    suppressed = ma.fields.Boolean()


class DeadlinesReportSchema(ma.Schema):
    """Referrals decided within their deadline by month; median days of a stay in each stage."""

    date_from = ma.fields.String(data_key="from", allow_none=True)
    date_to = ma.fields.String(data_key="to", allow_none=True)
    min_cell = ma.fields.Integer()
    decisions = ma.fields.List(ma.fields.Nested(DecisionMonthSchema))
    stage_days = ma.fields.List(ma.fields.Nested(StageDaysSchema))


class DurationSchema(ma.Schema):
    median_days = ma.fields.Float(allow_none=True)
    p90_days = ma.fields.Float(allow_none=True)
    suppressed = ma.fields.Boolean()


class DurationsSchema(ma.Schema):
    """Days from submission: median and 90th percentile, null over fewer than REPORT_MIN_CELL referrals."""

    to_acceptance = ma.fields.Nested(DurationSchema)
    to_arrival = ma.fields.Nested(DurationSchema)
    to_reintegration = ma.fields.Nested(DurationSchema)


class CellSchema(ma.Schema):
    referrals = ma.fields.Integer(allow_none=True)
    accepted_cases = ma.fields.Integer(allow_none=True)
    repatriated = ma.fields.Integer(allow_none=True)
    reintegrated = ma.fields.Integer(allow_none=True)
    suppressed = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf(COUNTS)),
        metadata={"description": "counts returned as null: under the threshold, or hiding one that is"},
    )
    durations = ma.fields.Nested(DurationsSchema)


class RowSchema(CellSchema):
    group = ma.fields.Dict(
        metadata={"description": "the value of each grouping dimension (null: none recorded)"}
    )


class SummarySchema(ma.Schema):
    group_by = ma.fields.List(ma.fields.String())
    date_from = ma.fields.String(data_key="from", allow_none=True)
    date_to = ma.fields.String(data_key="to", allow_none=True)
    min_cell = ma.fields.Integer()
    rows = ma.fields.List(ma.fields.Nested(RowSchema))
    total = ma.fields.Nested(CellSchema)


class EraseInSchema(ma.Schema):
    """Why the personal data is erased: a code (it is audited; free text could be personal)."""

    class Meta:
        unknown = ma.RAISE

    reason = ma.fields.String(required=True, validate=ma.validate.OneOf(REQUEST_REASONS))


class ErasedSchema(ma.Schema):
    erased_at = ma.fields.AwareDateTime()
    reason = ma.fields.String()
    case = ma.fields.String(allow_none=True, metadata={"description": "the erased case's reference"})
    referrals = ma.fields.List(
        ma.fields.String(), metadata={"description": "references of the erased referrals"}
    )
    keys_shredded = ma.fields.Integer()


class ExportArgsSchema(ma.Schema):
    """`GET /api/v1/reports/export.csv` parameters; unknown ones are refused."""

    class Meta:
        unknown = ma.RAISE

    date_from = report_day(
        "from",
        "first submission day: a 1 January (the export covers whole calendar years; none: from the first)",
        whole_year_edge("from", 1, 1, "a 1 January"),
    )
    date_to = report_day(
        "to",
        "last submission day: a 31 December (the export covers whole calendar years; none: until now)",
        whole_year_edge("to", 12, 31, "a 31 December"),
    )

    _ordered = SummaryArgsSchema._ordered
