"""The DomainError tree and the one renderer of RFC 9457 problem details."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Response, g, has_request_context, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://mgec.mn/problems/"

log = logging.getLogger("referral_api.errors")


class DomainError(Exception):
    """A failure the caller can act on; `status` and `code` decide the problem answer."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: Mapping[str, Sequence[str]] | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = {k: list(v) for k, v in (errors or {}).items()}
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


class InvalidPayload(DomainError):
    status = 422
    code = "invalid_payload"
    title = "The request has invalid fields"


class MalformedRequest(DomainError):
    status = 400
    code = "malformed_request"
    title = "The request could not be read"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflict with the current state"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "This move is not allowed from the current state"


class PreconditionFailed(DomainError):
    status = 412
    code = "precondition_failed"
    title = "The record changed since you read it"


class TooManyRequests(DomainError):
    status = 429
    code = "too_many_requests"
    title = "Too many requests"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"
    title = "Send application/json"


class ServiceUnavailable(DomainError):
    status = 503
    code = "service_unavailable"
    title = "The service is temporarily unavailable"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": "5"})
        super().__init__(detail, **kwargs)


def require_current(if_match: str | None, current_etag: str, *, what: str) -> None:
    """Honour If-Match on a write: absent or `*` passes; otherwise one of its tags must be current (412)."""
    if if_match is None or if_match.strip() == "*":
        return
    if current_etag not in {t.strip().removeprefix("W/") for t in if_match.split(",")}:
        raise PreconditionFailed(f"The {what} changed since you read it; read it again and retry.")


def problem(
    status: int,
    *,
    title: str,
    detail: str | None = None,
    code: str | None = None,
    errors: Mapping[str, Sequence[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Response:
    """Render one problem+json answer; every error of the app goes through here."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (code or str(status)),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if has_request_context():
        body["instance"] = request.path
        body["request_id"] = g.get("request_id")
    if errors:
        body["errors"] = {k: list(v) for k, v in errors.items()}
    if extra:
        body.update(extra)
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_JSON)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_").replace("'", "")


_OAUTH_HEADERS = {"www-authenticate", "dpop-nonce"}


def _render_oauth(exc: OAuth2Error) -> Response:
    """An RFC 6750 error of a protected route: problem+json with the `error` member and, untouched,
    the `WWW-Authenticate` header that OAuth clients read."""
    status = exc.status_code or 400
    headers = {k: v for k, v in exc.get_headers() if k.lower() in _OAUTH_HEADERS}
    title = {401: "Authentication required", 403: "The token lacks the scope"}.get(status, "OAuth error")
    return problem(status, title=title, detail=exc.get_error_description() or title, code=exc.error,
                   headers=headers, extra={"error": exc.error})


def render(exc: BaseException) -> Response:
    """Map any exception to problem+json; unknown ones become a 500 that reveals nothing."""
    if isinstance(exc, OAuth2Error):
        return _render_oauth(exc)
    if isinstance(exc, DomainError):
        return problem(
            exc.status,
            title=exc.title,
            detail=exc.detail,
            code=exc.code,
            errors=exc.errors,
            headers=exc.headers,
            extra=exc.extra,
        )
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
        if status == 429 and exc.response is not None and "Retry-After" in exc.response.headers:
            headers["Retry-After"] = exc.response.headers["Retry-After"]
        return problem(status, title=exc.name, detail=_safe_http_detail(exc), code=_http_code(exc),
                       headers=headers)
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    ):
        log.warning("database unreachable: %s", type(exc.orig if hasattr(exc, "orig") else exc).__name__)
        return render(ServiceUnavailable("The database is unreachable; try again shortly."))
    log.error("unhandled error", exc_info=exc)
    return problem(500, title="Internal server error", detail="An unexpected error occurred.",
                   code="internal_error")


def _safe_http_detail(exc: HTTPException) -> str:
    # Werkzeug's descriptions are fixed texts, never echoes of the request; keep them short.
    return (exc.description or exc.name or "").strip()


class PersonalDataUnavailable(DomainError):
    """The personal data of a record cannot be shown; the record's other facts still can."""

    status = 410
    code = "personal_data_unavailable"
    title = "The personal data of this record is not available"


class DataErased(PersonalDataUnavailable):
    code = "data_erased"
    title = "The personal data of this record was erased"


class DataKeyMissing(PersonalDataUnavailable):
    code = "data_key_missing"
    title = "The key of this record's personal data is missing"
