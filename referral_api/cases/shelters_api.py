"""`/api/v1/shelters`: shelters, their capacity and occupancy (MGEC staff; the rules in shelters.py)."""

from __future__ import annotations

import uuid

from flask_restx import Namespace, Resource

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..http import doc_model, error_docs, load, with_etag
from ..idempotency import idempotent
from . import shelters
from .api import ERRORS, IDEMPOTENCY
from .schemas import ShelterInSchema, ShelterListSchema, ShelterPatchSchema, ShelterSchema

shelters_ns = Namespace("shelters", description="Shelters, capacity and occupancy", path="/api/v1/shelters")

_shelters = doc_model(shelters_ns, ShelterListSchema, "Shelters")
_shelter = doc_model(shelters_ns, ShelterSchema, "Shelter")
_shelter_in = doc_model(shelters_ns, ShelterInSchema, "ShelterIn")
_shelter_patch = doc_model(shelters_ns, ShelterPatchSchema, "ShelterPatch")
_documents = error_docs(shelters_ns, ERRORS)


def documents(_namespace, *codes):
    """Document the error answers a shelter route can give."""
    return _documents(*codes)


_SHELTER = ShelterSchema()


def _shelter_document(shelter, taken):
    return _SHELTER.dump(
        {
            "id": shelter.id,
            "name": shelter.name,
            "city": shelter.city,
            "capacity": shelter.capacity,
            "occupancy": taken,
            "organisation_id": shelter.organisation_id,
            "closed": shelter.closed_at is not None,
            "closed_at": shelter.closed_at,
        }
    )


@shelters_ns.route("")
class ShelterList(Resource):
    @shelters_ns.response(200, "Shelters with capacity and occupancy (active placements)", _shelters)
    @documents(shelters_ns, 401, 403)
    @require_scope(Scope.CASES_READ)
    def get(self):
        """Shelters, their capacity and how many beds are taken (MGEC staff)."""
        rows = shelters.shelters(get_session(), current_actor())
        return {"items": [_shelter_document(s, n) for s, n in rows]}

    @shelters_ns.expect(_shelter_in)
    @shelters_ns.doc(params=IDEMPOTENCY)
    @shelters_ns.response(201, "Added; Location names the shelter", _shelter)
    @documents(shelters_ns, 401, 403, 409, 422)
    @require_scope(Scope.ADMIN)
    def post(self):
        """Add a shelter (MGEC admin, a person)."""
        actor, session = current_actor(), get_session()
        data = load(ShelterInSchema())

        def handler():
            shelter, taken = shelters.create_shelter(session, actor, data)
            headers = {"Location": f"/api/v1/shelters/{shelter.id}"}
            return shelter.id, with_etag(_shelter_document(shelter, taken), status=201, headers=headers)

        def replay(shelter_id):
            return with_etag(_shelter_document(*shelters.shelter(session, actor, uuid.UUID(shelter_id))))

        return idempotent(session, actor=actor, handler=handler, replay=replay)


@shelters_ns.route("/<string:shelter_id>")
@shelters_ns.param("shelter_id", "the shelter's id")
class ShelterItem(Resource):
    @shelters_ns.expect(_shelter_patch)
    @shelters_ns.response(200, "Changed", _shelter)
    @documents(shelters_ns, 401, 403, 404, 409, 422)
    @require_scope(Scope.ADMIN)
    def patch(self, shelter_id):
        """Rename, resize, close or reopen a shelter (MGEC admin); capacity never below occupancy (409)."""
        data = load(ShelterPatchSchema())
        shelter, taken = shelters.update_shelter(get_session(), current_actor(), shelter_id, data)
        return with_etag(_shelter_document(shelter, taken))
