"""`/api/v1/reports`: anonymised aggregates for holders of `reports:read`."""

from __future__ import annotations

from flask import current_app
from flask_restx import Namespace, Resource

from ..access import Scope, require_scope
from ..db import get_session
from ..http import doc_model, doc_query, error_docs, query_args
from . import summary
from .schemas import SummaryArgsSchema, SummarySchema

ns = Namespace("reports", description="Anonymised reports (small cells suppressed)", path="/api/v1/reports")

_summary = doc_model(ns, SummarySchema, "ReportSummary")
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
        count that would let one be recovered by subtracting from the total or from other cells.
        """
        args = query_args(SummaryArgsSchema())
        query = summary.SummaryQuery(
            tuple(v for v in args["group_by"].split(",") if v), args["date_from"], args["date_to"]
        )
        k = current_app.config["SETTINGS"].report_min_cell
        return summary.summary(get_session(), query, k=k)
