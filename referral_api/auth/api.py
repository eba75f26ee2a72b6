"""`GET /api/v1/me`: who the token speaks for."""

from __future__ import annotations

from flask_restx import Namespace, Resource

from ..access import ALL_SCOPES, current_actor, require_scope
from ..http import doc_model
from .schemas import MeSchema

ns = Namespace("me", description="The caller behind the bearer token", path="/api/v1")

_me = doc_model(ns, MeSchema, "Me")
_out = MeSchema()


@ns.route("/me")
class Me(Resource):
    @ns.response(200, "The organisation, client, person and scopes of the token", _me)
    @ns.response(401, "No token, or an invalid, expired or revoked one (invalid_token)")
    @ns.response(403, "The token holds none of the API's scopes (insufficient_scope)")
    @require_scope(any_of=ALL_SCOPES)
    def get(self):
        """Who the token speaks for; any token holding at least one of the API's scopes may ask."""
        actor = current_actor()
        return _out.dump({
            "organisation": {"id": actor.organisation.id, "kind": str(actor.organisation.kind)},
            "client_id": actor.client_id,
            "user_id": actor.user_id,
            "role": actor.role.value if actor.role else None,
            "scopes": sorted(actor.scopes),
        })
