"""Documents on the referral and case pages: the list, upload, download and delete, through the documents
services (their visibility, consent and audit rules apply as through the API; none is repeated here).

An upload parses its own multipart body in memory (documents/upload.py), so the form's CSRF token is
checked here, after the body is read and before anything is stored.
"""

from __future__ import annotations

from typing import Any

from flask import Response, redirect, url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge

from ..access import Actor, Scope
from ..db import get_session
from ..documents import services
from ..documents.models import DocumentKind, ParentType
from ..documents.schemas import DocumentInSchema
from ..documents.storage import get_store
from ..documents.upload import MIB, max_body_bytes, max_file_bytes, read_upload
from ..documents.views import document_view, download_response
from ..errors import DataErased, DomainError, Forbidden, InvalidPayload, UnsupportedMediaType
from ..http import accepts_upload
from .forms import field_errors, load_form
from .labels import WORDS
from .shell import actor, bp, csrf_ok, page, render_error

WORDS["document_kind"] = {
    "consent_form": _l("Consent form"),
    "passport_copy": _l("Passport copy"),
    "travel_document": _l("Travel document"),
    "police_report": _l("Police report"),
    "identification_photo": _l("Identification photo"),
    "medical": _l("Medical document"),
    "other": _l("Other document"),
}
# The console's word for each refusal of an upload, by its HTTP status.
REFUSED = {
    410: _l("This record was erased: documents can no longer be added."),
    415: _l("This type of file is not accepted. Please upload a PDF, JPEG, PNG or HEIC file."),
    403: _l("The person's consent does not cover this kind of document."),
}
_FILE_MESSAGES = (
    ("empty", _l("The file is empty.")),
    ("exactly one file", _l("Please choose a file.")),
    ("cannot be read", _l("The file cannot be read. Please check it and upload it again.")),
)
PAGES = {ParentType.REFERRAL: "console.referral", ParentType.CASE: "console.case"}
PARENT_PATHS = {ParentType.REFERRAL: "referrals", ParentType.CASE: "cases"}


def size_in_words(size: int) -> str:
    """A file's size as a person reads it (KB below one MB, MB with one decimal above)."""
    if size < MIB:
        return str(_l("%(n)s KB", n=max(1, round(size / 1024))))
    return str(_l("%(n)s MB", n=f"{size / MIB:.1f}"))


def section(
    session: Session,
    who: Actor,
    parent_type: ParentType,
    record_id: str,
    *,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What the documents section of a record's page shows (its template is console/_documents.html)."""
    staff = False
    try:
        parent, found = services.list_for(session, who, parent_type, record_id)
        shown, staff = [document_view(d, parent, who) for d in found], parent.staff
    except DomainError:  # not the person's to see: the section says so, the page still opens
        session.rollback()
        shown = None
    may_write = any(who.has(s) for s in services.WRITE_SCOPES[parent_type])  # as services.add/delete ask
    return {
        "documents": shown,
        "document_kinds": list(DocumentKind),
        "document_errors": errors or {},
        "documents_may_add": may_write,
        "documents_may_delete": may_write and staff,  # services.delete: MGEC staff only
        "documents_parent": PARENT_PATHS[parent_type],
        "documents_max_mb": max_file_bytes() // MIB,
        "size_in_words": size_in_words,
    }


def _upload_refused(refused: DomainError) -> dict[str, str]:
    """The upload's problem in the person's words, keyed by the form field it concerns."""
    if refused.status in REFUSED:
        return {"document-file": str(REFUSED[refused.status])}
    found = field_errors({k: v for k, v in (refused.errors or {}).items() if k != "file"})
    out = {f"document-{k}": v for k, v in found.items()}
    said = " ".join((refused.errors or {}).get("file", [])) or (refused.detail or "")
    if "file" in (refused.errors or {}) or not out:
        word = next((str(w) for key, w in _FILE_MESSAGES if key in said), str(_l("Please check the file.")))
        out["document-file"] = word
    return out


# The record pages that show a documents section register their renderer here (queue.py, cases.py), so
# that an upload refused can be said on its record's page without this module importing them back.
RECORD_PAGES: dict[ParentType, Any] = {}


def _record_page(parent_type: ParentType, ref: str, status: int, errors: dict[str, str]) -> Response:
    return RECORD_PAGES[parent_type](ref, status=status, document_errors=errors)


def _upload(parent_type: ParentType, ref: str) -> Response:
    """Read the multipart form, check its CSRF token, then one call of the documents service."""
    session, who = get_session(), actor()
    try:
        form, upload = read_upload()
    except RequestEntityTooLarge:
        return render_error(413, too_large_mb=max_file_bytes() // MIB)
    except (UnsupportedMediaType, InvalidPayload) as refused:
        if refused.status == 415:  # not multipart: not the console's form
            return render_error(400)
        return _record_page(parent_type, ref, 422, _upload_refused(refused))
    if not csrf_ok(form.pop("csrf_token", "")):
        return render_error(400, csrf=True)
    try:
        data = load_form(DocumentInSchema(), {k: v for k, v in form.items() if v.strip()})
        services.add(
            session,
            who,
            parent_type,
            ref,
            kind=data["kind"],
            note=data.get("note"),
            upload=upload,
            store=get_store(),
        )
    except (InvalidPayload, UnsupportedMediaType, DataErased, Forbidden) as refused:
        session.rollback()
        return _record_page(parent_type, ref, refused.status, _upload_refused(refused))
    return redirect(url_for(PAGES[parent_type], ref=ref) + "#documents", code=303)


@bp.route("/referrals/<ref>/documents", methods=["POST"])
@accepts_upload(max_body_bytes)
@page(Scope.REFERRALS_READ)
def referral_document_add(ref: str) -> Response:
    """Add a document to a referral (multipart: file, kind, note)."""
    return _upload(ParentType.REFERRAL, ref)


@bp.route("/cases/<ref>/documents", methods=["POST"])
@accepts_upload(max_body_bytes)
@page(Scope.CASES_READ)
def case_document_add(ref: str) -> Response:
    """Add a document to a case (multipart: file, kind, note)."""
    return _upload(ParentType.CASE, ref)


@bp.route("/documents/<document_id>/content")
@page()
def document_content(document_id: str) -> Response:
    """Download a document through the documents service (audited; visibility and consent apply)."""
    document, chunks = services.open_content(get_session(), actor(), document_id, store=get_store())
    return download_response(document, chunks)


@bp.route("/<any(referrals, cases):parents>/<ref>/documents/<document_id>/delete", methods=["POST"])
@page()
def document_delete(parents: str, ref: str, document_id: str) -> Response:
    """Delete a document (MGEC staff with the record's write scope; the service decides)."""
    services.delete(get_session(), actor(), document_id, store=get_store())
    parent_type = next(kind for kind, path in PARENT_PATHS.items() if path == parents)
    return redirect(url_for(PAGES[parent_type], ref=ref) + "#documents", code=303)
