"""A document as a caller is shown it: its metadata, and its content as a download."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response

from ..access import Actor
from .models import Document
from .schemas import DocumentSchema
from .services import download_name
from .visibility import Parent

_SCHEMA = DocumentSchema()


def document_view(document: Document, parent: Parent, actor: Actor) -> dict[str, Any]:
    """Metadata; the note (sealed) for MGEC staff and the uploading organisation, while not erased; who
    uploaded it for them only too (a participant may not learn which other organisations take part in
    a case: the shelter that uploaded a travel document says where the person is)."""
    erased = parent.erased or document.discarded_at is not None
    own = document.uploaded_by_organisation_id == actor.organisation_id
    shown = parent.staff or own
    return _SCHEMA.dump(
        {
            "id": document.id,
            "referral_id": document.referral_id,
            "case_id": document.case_id,
            "kind": document.kind,
            "content_type": document.media_type,
            "size": document.size,
            "metadata_stripped": document.metadata_stripped,
            "note": document.note if shown and not erased else None,
            "uploaded_at": document.uploaded_at,
            "uploaded_by_organisation_id": document.uploaded_by_organisation_id if shown else None,
            "erased": erased,
            "content_url": f"/api/v1/documents/{document.id}/content",
        }
    )


def download_response(document: Document, chunks: Iterator[bytes]) -> Response:
    """The content streamed as an attachment with a generated name, never sniffed, never cached
    (the API's and the console's downloads alike)."""
    return Response(
        chunks,
        mimetype=document.media_type.value,
        direct_passthrough=True,
        headers={
            "Content-Length": str(document.size),
            "Content-Disposition": f'attachment; filename="{download_name(document)}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )
