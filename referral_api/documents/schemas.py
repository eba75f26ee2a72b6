"""What comes in with a document (the form fields beside the file) and what a caller is shown of one."""

from __future__ import annotations

import marshmallow as ma

from ..validators import StrictSchema, enum_field, text_field
from .models import DocumentKind, MediaType


class DocumentInSchema(StrictSchema):
    """The form fields of an upload; the file itself is the multipart part `file`."""

    kind = enum_field(DocumentKind, required=True)
    note = text_field(2000, metadata={"description": "sealed like the person's other free text"})


class DocumentSchema(ma.Schema):
    id = ma.fields.UUID()
    referral_id = ma.fields.UUID(allow_none=True)
    case_id = ma.fields.UUID(allow_none=True)
    kind = enum_field(DocumentKind)
    content_type = enum_field(MediaType, metadata={"description": "decided from the file's bytes"})
    size = ma.fields.Integer(metadata={"description": "bytes of the stored file"})
    metadata_stripped = ma.fields.Boolean(
        metadata={"description": "true for images (re-encoded without EXIF, GPS, camera serial); "
                                 "false for PDFs, which are stored as sent"}
    )
    note = ma.fields.String(allow_none=True, metadata={"description": "MGEC staff and the uploader only"})
    uploaded_at = ma.fields.AwareDateTime()
    uploaded_by_organisation_id = ma.fields.UUID(
        allow_none=True, metadata={"description": "MGEC staff and the uploader only (null for others)"})
    erased = ma.fields.Boolean(metadata={"description": "the parent was erased: the content is gone (410)"})
    content_url = ma.fields.String()


class DocumentListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DocumentSchema))
