"""Reading a multipart upload at the HTTP edge: the file into memory once, never to a temporary file.

Werkzeug's default parser spools files over 500 KB to a temporary file on disk, where the plaintext
of a passport copy would linger in free blocks; this parser keeps the file in one in-memory buffer,
within DOCUMENT_MAX_MB (the whole body is capped before anything is read, see http.check_request_body).
"""

from __future__ import annotations

import io
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.formparser import FormDataParser

from ..errors import InvalidPayload, MalformedRequest, UnsupportedMediaType
from .services import Upload

MIB = 1024 * 1024
# Room for the multipart boundaries, the headers of the parts and the form fields around the file.
ENVELOPE_BYTES = 64 * 1024


def max_file_bytes() -> int:
    return current_app.config["SETTINGS"].document_max_mb * MIB


def max_body_bytes() -> int:
    """The body limit of an upload route (used by http.check_request_body before any byte is read)."""
    return max_file_bytes() + ENVELOPE_BYTES


def _in_memory(*_args: Any, **_kwargs: Any) -> io.BytesIO:
    return io.BytesIO()


def read_upload() -> tuple[dict[str, str], Upload]:
    """The form fields and the file of a multipart/form-data request; 413 over DOCUMENT_MAX_MB."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "This endpoint accepts multipart/form-data only.",
            errors={"Content-Type": [f"unsupported media type {request.mimetype or 'none'!r}"]},
        )
    parser = FormDataParser(
        stream_factory=_in_memory,
        max_form_memory_size=256 * 1024,  # above the parser's 64 KiB reads: it counts its buffer too
        max_content_length=max_body_bytes(),
        silent=False,
        max_form_parts=8,
    )
    try:
        _stream, form, files = parser.parse(
            request.stream, request.mimetype, request.content_length, request.mimetype_params
        )
    except ValueError:
        raise MalformedRequest(
            "The body is not valid multipart/form-data.", errors={"body": ["malformed multipart body"]}
        ) from None
    uploaded = files.getlist("file")
    if len(uploaded) != 1:
        raise InvalidPayload(errors={"file": ["exactly one file is required"]})
    data = uploaded[0].stream
    size = data.getbuffer().nbytes
    if size > max_file_bytes():
        limit = max_file_bytes() // MIB
        raise RequestEntityTooLarge(f"The file is larger than DOCUMENT_MAX_MB ({limit} MB).")
    if size == 0:
        raise InvalidPayload(errors={"file": ["the file is empty"]})
    data.seek(0)
    return form.to_dict(), Upload(data=data, size=size)
