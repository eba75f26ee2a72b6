"""Request ids, structured JSON logs that never carry a body, and the security headers of every answer."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from flask import Flask, Request, Response, g, request
from pythonjsonlogger.json import JsonFormatter

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # whole value: fullmatch ($ passes a final \n)

access_log = logging.getLogger("referral_api.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr for the service's own loggers."""
    root = logging.getLogger("referral_api")
    if any(getattr(h, "_referral_api", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._referral_api = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{request_id}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(_RequestIdFilter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False


def _start_request() -> None:
    # g and request resolved once: each access through their proxies costs a lookup
    here = g._get_current_object()  # type: ignore[attr-defined]
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    here.request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else str(uuid.uuid4())
    here.request_started = time.perf_counter()


_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'"
)
_FORM_CSP = "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"


# Set on every answer, replacing a view's own (a view may set its own Cache-Control and CSP: kept).
_ALWAYS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
           ("Referrer-Policy", "no-referrer"))
_HSTS = ("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
_DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"


def _csp(path: str) -> str:
    if path.startswith(("/docs", "/swaggerui")):
        return _DOCS_CSP
    if path.startswith("/oauth/authorize"):
        return _FORM_CSP
    return _DEFAULT_CSP


def _security_headers(response: Response, req: Request, request_id: str) -> None:
    """The request id and the security headers, added in one pass over the answer's headers (setting
    each one scans and rebuilds the header list: that cost more than the rest of this hook)."""
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    wanted = [(REQUEST_ID_HEADER, request_id), *_ALWAYS]
    if req.is_secure:
        wanted.append(_HSTS)
    for name, _value in wanted:
        if name.lower() in present:
            del headers[name]
    if "cache-control" not in present:
        wanted.append(("Cache-Control", "no-store"))
    if "content-security-policy" not in present:
        wanted.append(("Content-Security-Policy", _csp(req.path)))
    headers.extend(wanted)


def _finish_request(response: Response) -> Response:
    req, here = request._get_current_object(), g._get_current_object()  # type: ignore[attr-defined]
    request_id = here.get("request_id")
    _security_headers(response, req, request_id or "")
    started = here.get("request_started")
    access_log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": req.method,
            # The path only: query strings and bodies may carry what must never reach a log.
            "path": req.path,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
            "client_id": here.get("log_client_id"),
        },
    )
    return response


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
