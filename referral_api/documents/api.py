"""Documents of referrals and cases, `/api/v1/documents/{id}`: HTTP in, one service call, HTTP out."""

from __future__ import annotations

from flask import Response
from flask_restx import Namespace, Resource
from werkzeug.datastructures import FileStorage

from ..access import Scope, current_actor, require_scope
from ..db import get_session
from ..errors import PROBLEM_JSON
from ..http import accepts_upload, doc_model, error_docs, load, with_etag
from . import services
from .content import ALLOWED
from .models import DocumentKind, MediaType, ParentType
from .schemas import DocumentInSchema, DocumentListSchema, DocumentSchema
from .storage import get_store
from .upload import max_body_bytes, read_upload
from .views import document_view, download_response

ns = Namespace("documents", description="Documents of referrals and cases, sealed at rest", path="/api/v1")

_document = doc_model(ns, DocumentSchema, "Document")
_documents = doc_model(ns, DocumentListSchema, "Documents")
_upload = ns.parser()
_upload.add_argument(
    "file", location="files", type=FileStorage, required=True,
    help=f"the file: {ALLOWED}, decided by its bytes. Images are re-encoded without EXIF, GPS or camera "
         "serial; PDFs are stored as sent (remove their metadata before uploading if it matters).",
)
_upload.add_argument("kind", location="form", required=True, choices=[k.value for k in DocumentKind])
_upload.add_argument("note", location="form", help="up to 2000 characters, sealed")

documents = error_docs(ns, {
    404: "No such record or document, or not yours to see",
    410: "The record was erased: its documents can no longer be read",
    413: "The file is larger than DOCUMENT_MAX_MB",
    415: f"Not multipart/form-data, or the file is not one of: {ALLOWED}",
    422: "Invalid fields (kind, note, file), named in `errors`",
})
_PARENTS = {
    ParentType.REFERRAL: ("referrals", Scope.REFERRALS_READ, [Scope.REFERRALS_SUBMIT, Scope.REFERRALS_REVIEW],
                          "the referral's id or reference"),
    ParentType.CASE: ("cases", Scope.CASES_READ, [Scope.CASES_UPDATE], "the case's id or reference"),
}


def _register(parent_type: ParentType) -> None:
    """GET and POST /<parents>/<ref>/documents, with the parent's scopes."""
    path, read_scope, write_scopes, ref_help = _PARENTS[parent_type]

    def get(self, ref):
        parent, found = services.list_for(get_session(), current_actor(), parent_type, ref)
        return {"items": [document_view(d, parent, current_actor()) for d in found]}

    def post(self, ref):
        actor, session = current_actor(), get_session()
        form, upload = read_upload()
        data = load(DocumentInSchema(), form)
        document, parent = services.add(session, actor, parent_type, ref, kind=data["kind"],
                                        note=data.get("note"), upload=upload, store=get_store())
        return with_etag(document_view(document, parent, actor), status=201,
                         headers={"Location": f"/api/v1/documents/{document.id}/content"})

    get.__doc__ = f"The documents of a {parent_type.value} you may see (metadata; personal kinds by consent)."
    post.__doc__ = (f"Add a document to a {parent_type.value} (multipart/form-data): sealed with the "
                    "record's data key; images lose their metadata, PDFs are stored as sent.")
    get = ns.response(200, "The documents", _documents)(require_scope(read_scope)(get))
    get = documents(401, 403, 404)(get)
    post = require_scope(any_of=write_scopes)(post)
    post = ns.response(201, "Added; Location is the content's URL", _document)(post)
    post = documents(401, 403, 404, 410, 422)(ns.expect(_upload)(post))
    post = ns.doc(consumes=["multipart/form-data"])(post)
    post = accepts_upload(max_body_bytes)(post)
    resource = type(f"{parent_type.value.title()}Documents", (Resource,), {"get": get, "post": post})
    ns.route(f"/{path}/<string:ref>/documents")(ns.param("ref", ref_help)(resource))


for _parent in ParentType:
    _register(_parent)


@ns.route("/documents/<string:document_id>/content")
@ns.param("document_id", "the document's id")
class DocumentContent(Resource):
    @ns.produces([*(m.value for m in MediaType), PROBLEM_JSON])
    @ns.response(200, "The file, as an attachment with a generated name")
    @documents(401, 403, 404, 410)
    @require_scope(any_of=[Scope.REFERRALS_READ, Scope.CASES_READ])
    def get(self, document_id):
        """Download a document (audited): Content-Disposition attachment, nosniff, a generated file name."""
        document, chunks = services.open_content(
            get_session(), current_actor(), document_id, store=get_store()
        )
        return download_response(document, chunks)


@ns.route("/documents/<string:document_id>")
@ns.param("document_id", "the document's id")
class DocumentItem(Resource):
    @ns.response(204, "Deleted, with its stored content")
    @documents(401, 403, 404)
    @require_scope(any_of=[Scope.REFERRALS_SUBMIT, Scope.REFERRALS_REVIEW, Scope.CASES_UPDATE])
    def delete(self, document_id):
        """Delete a document (MGEC staff, with the parent's write scope)."""
        services.delete(get_session(), current_actor(), document_id, store=get_store())
        return Response(status=204)
