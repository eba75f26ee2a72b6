"""`/api/v1/reports`: anonymised aggregates for holders of `reports:read`."""

from __future__ import annotations

from flask import Response, current_app
from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, doc_query, error_docs, load, query_args
from . import export, retention, summary, timeliness
from .schemas import (
    DeadlinesArgsSchema,
    DeadlinesReportSchema,
    ErasedSchema,
    EraseInSchema,
    ExportArgsSchema,
    SummaryArgsSchema,
    SummarySchema,
)

ns = Namespace("reports", description="Anonymised reports (small cells suppressed)", path="/api/v1/reports")

_summary = doc_model(ns, SummarySchema, "ReportSummary")
_deadlines = doc_model(ns, DeadlinesReportSchema, "ReportDeadlines")
_deadlines_out = DeadlinesReportSchema()
documents = error_docs(
    ns,
    {
        401: "No or bad token",
        403: "The token lacks reports:read",
        422: "Invalid parameter",
    },
)


@ns.route("/summary")
class ReportSummary(Resource):
    @ns.doc(params=doc_query(SummaryArgsSchema))
    @ns.response(200, "Counts and durations by group; small cells suppressed", _summary)
    @documents(401, 403, 422)
    @require_scope(Scope.REPORTS_READ)
    def get(self):
        """Referrals, accepted cases, repatriated and reintegrated people, and durations, by group.

        A count above zero and under REPORT_MIN_CELL is null and named in `suppressed`, and so is any
        count that would let one be recovered by subtracting from the total or from other cells
        (grouped by type, the overlap of the types too). Within this answer: the answers of other
        groupings or periods are not suppressed together with it (README, Reports: known limits).
        """
        args = query_args(SummaryArgsSchema())
        query = summary.SummaryQuery(
            tuple(v for v in args["group_by"].split(",") if v), args["date_from"], args["date_to"]
        )
        k = current_app.config["SETTINGS"].report_min_cell
        return summary.summary(get_session(), query, k=k)


@ns.route("/deadlines")
class ReportDeadlines(Resource):
    @ns.doc(params=doc_query(DeadlinesArgsSchema))
    @ns.response(200, "Decisions in time by month, days in each stage; small cells suppressed", _deadlines)
    @documents(401, 403, 422)
    @require_scope(Scope.REPORTS_READ)
    def get(self):
        """Share of referrals decided within their deadline, by month; median days in each stage.

        Counts from 1 to REPORT_MIN_CELL - 1 are null and named in `suppressed` (with what would reveal
        them); a stage's median over fewer than REPORT_MIN_CELL stays is null.
        """
        args = query_args(DeadlinesArgsSchema())
        settings = current_app.config["SETTINGS"]
        return _deadlines_out.dump(timeliness.report(
            get_session(), settings=settings, k=settings.report_min_cell,
            date_from=args["date_from"], date_to=args["date_to"]))


erasure_ns = Namespace(
    "erasure",
    description="Erasure on request: crypto-shredding a person's data (MGEC admins)",
    path="/api/v1",
)
_erase_in = doc_model(erasure_ns, EraseInSchema, "EraseIn")
_erased = doc_model(erasure_ns, ErasedSchema, "Erased")
_erased_out = ErasedSchema()
erase_documents = error_docs(
    erasure_ns,
    {
        401: "No or bad token",
        403: "The token lacks admin (people holding the MGEC admin role only)",
        404: "No such record",
        409: "Erased already",
        422: "No reason, or not one of the reason codes",
    },
)


@erasure_ns.route("/cases/<string:ref>/erase")
@erasure_ns.param("ref", "the case's id or reference")
class CaseErase(Resource):
    @erasure_ns.expect(_erase_in)
    @erasure_ns.response(200, "Erased: the case and its referrals' personal data are gone for good", _erased)
    @erase_documents(401, 403, 404, 409, 422)
    @require_scope(Scope.ADMIN)
    def post(self, ref):
        """Crypto-shred the person of a case (and of the referrals linked to it); the plain facts stay."""
        body = load(EraseInSchema())
        return _erased_out.dump(retention.erase_case(get_session(), current_actor(), ref, body["reason"]))


@erasure_ns.route("/referrals/<string:ref>/erase")
@erasure_ns.param("ref", "the referral's id or reference")
class ReferralErase(Resource):
    @erasure_ns.expect(_erase_in)
    @erasure_ns.response(
        200, "Erased: the referral's personal data (and its case's, if any) are gone", _erased
    )
    @erase_documents(401, 403, 404, 409, 422)
    @require_scope(Scope.ADMIN)
    def post(self, ref):
        """Crypto-shred the person of a referral (an accepted one: its case too, the same person)."""
        body = load(EraseInSchema())
        return _erased_out.dump(retention.erase_referral(get_session(), current_actor(), ref, body["reason"]))


@ns.route("/export.csv")
class ReportExport(Resource):
    @ns.doc(params=doc_query(ExportArgsSchema))
    @ns.produces(["text/csv", "application/problem+json"])
    @ns.response(200, "One anonymised row per person, CTDC global-dataset columns (text/csv)")
    @documents(401, 403, 422)
    @require_scope(Scope.REPORTS_READ)
    def get(self):
        """One row per person in CTDC's layout, k-anonymous over its quasi-identifiers.

        The period is whole calendar years (the year of registration is the only time quasi-identifier):
        `from` must be a 1 January and `to` a 31 December, else 422 naming the field.
        """
        args = query_args(ExportArgsSchema())
        k = current_app.config["SETTINGS"].report_min_cell
        body = export.export_csv(get_session(), current_actor(), k=k, date_from=args["date_from"],
                                 date_to=args["date_to"])
        return Response(
            body, mimetype="text/csv", headers={"Content-Disposition": 'attachment; filename="ctdc.csv"'}
        )
