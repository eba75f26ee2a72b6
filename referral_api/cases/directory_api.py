"""`/api/v1/organisations`: the directory people and programs pick organisations from, by name.

It stands with cases/ because what a partner may see in it follows from the cases it takes part in."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, error_docs, query_args
from . import participants
from .schemas import DirectoryArgs, DirectoryEntrySchema, DirectoryPageSchema, DirectoryStaffEntrySchema

ns = Namespace("organisations", description="The organisation directory", path="/api/v1/organisations")

_page = doc_model(ns, DirectoryPageSchema, "OrganisationDirectoryPage")
_staff_out = DirectoryStaffEntrySchema()
_partner_out = DirectoryEntrySchema()
documents = error_docs(ns, {403: "The token lacks cases:read"})


@ns.route("")
class OrganisationDirectory(Resource):
    @ns.doc(params={"q": "a part of the name, any case", "limit": "1 to 200 (default 50)",
                    "cursor": "next_cursor of a page"})
    @ns.response(200, "A page of organisations by name: MGEC staff see all of them with kind, "
                      "country and status; partners see MGEC and the organisations taking part in "
                      "their cases, id and name only", _page)
    @documents(401, 403, 422)
    @require_scope(Scope.CASES_READ)
    def get(self):
        """Find organisations by name (for example to add one to a case)."""
        actor = current_actor()
        args = query_args(DirectoryArgs())
        items, next_cursor = participants.directory(get_session(), actor, text=args["q"], limit=args["limit"],
                                                    cursor=args.get("cursor"))
        out = _staff_out if actor.is_mgec else _partner_out
        return {"items": out.dump(items, many=True), "next_cursor": next_cursor}
