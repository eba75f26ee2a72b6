"""`/healthz` (the process is up) and `/readyz` (database reachable, migrations at head)."""

from __future__ import annotations

import marshmallow as ma
import sqlalchemy as sa
from flask_restx import Namespace, Resource
from sqlalchemy.exc import SQLAlchemyError

from . import dbmigrate
from .db import database
from .errors import ServiceUnavailable
from .http import doc_model

ns = Namespace("health", description="Liveness and readiness probes", path="/")


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True, metadata={"example": "ok"})


class ReadySchema(ma.Schema):
    """Only that: the route is public (a load balancer asks it), so it names no engine and no schema
    revision, which would tell anyone which version is deployed (`referral-api db current` does)."""

    status = ma.fields.String(required=True, metadata={"example": "ready"})


_health = doc_model(ns, HealthSchema, "Health")
_ready = doc_model(ns, ReadySchema, "Ready")


@ns.route("/healthz")
class Healthz(Resource):
    @ns.response(200, "The process is up", _health)
    def get(self):
        """Liveness: answers while the process runs, without touching the database."""
        return {"status": "ok"}


@ns.route("/readyz")
class Readyz(Resource):
    @ns.response(200, "Ready to serve", _ready)
    @ns.response(503, "Database unreachable or migrations not at head")
    def get(self):
        """Readiness: the database answers and its schema is at the migrations' head."""
        db = database()
        try:
            with db.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
                current = dbmigrate.current_revisions(conn)
        except SQLAlchemyError:
            raise ServiceUnavailable("The database is unreachable.") from None
        if current != dbmigrate.head_revisions():
            raise ServiceUnavailable("The database schema is not at the migrations' head; run "
                                     "`referral-api db upgrade`.")
        return {"status": "ready"}
