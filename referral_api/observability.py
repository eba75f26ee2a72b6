"""Request ids, structured JSON logs that never carry a body, and the security headers of every answer."""

from __future__ import annotations

import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from types import TracebackType

from flask import Flask, Request, Response, g, request
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy import exc as sa_exc

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # whole value: fullmatch ($ passes a final \n)

access_log = logging.getLogger("referral_api.access")


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        from flask import has_request_context

        if not hasattr(record, "request_id"):
            record.request_id = g.get("request_id") if has_request_context() else None
        return True


_DRIVER_MODULES = ("psycopg", "sqlite3")  # the DB-API drivers' errors (sqlite3's module is "sqlite3")
_STATEMENT_CHARS = 500


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from or while handling, newest first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def _is_database_error(exc: BaseException) -> bool:
    # PendingRollbackError (a session used again after a failed flush) copies the failure's text,
    # DETAIL included, into its own message
    return isinstance(exc, sa_exc.DBAPIError | sa_exc.PendingRollbackError) or \
        type(exc).__module__.split(".")[0] in _DRIVER_MODULES


def _database_error_text(exc: BaseException) -> str:
    """What a database error may say in a log: its kind, SQLSTATE, constraint and statement (values are
    bound parameters, hidden), never the server's message, whose DETAIL quotes the row ("Key
    (email)=(...) already exists", "Failing row contains (...)")."""
    if isinstance(exc, sa_exc.PendingRollbackError):
        return "the session was used again after a failed flush (its message quotes that failure's text)"
    orig = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    diag = getattr(orig, "diag", None)
    facts = [f"{type(orig).__module__}.{type(orig).__qualname__}"]
    for label, value in (("SQLSTATE", getattr(orig, "sqlstate", None)),
                         ("sqlite", getattr(orig, "sqlite_errorname", None)),
                         ("constraint", getattr(diag, "constraint_name", None)),
                         ("table", getattr(diag, "table_name", None)),
                         ("column", getattr(diag, "column_name", None))):
        if value:
            facts.append(f"{label} {value}")
    statement = getattr(exc, "statement", None)
    if statement:
        facts.append(f"in: {' '.join(str(statement).split())[:_STATEMENT_CHARS]}")
    return "; ".join(facts) + " (the server's message is not logged: it may quote the row's values)"


class _JsonFormatter(JsonFormatter):
    """JSON lines whose tracebacks never quote a database error's message (hide_parameters keeps the
    bound values out of SQLAlchemy's text, but the driver's message carries the server's DETAIL)."""

    def formatException(self, ei: tuple[type[BaseException], BaseException, TracebackType | None]
                        | tuple[None, None, None]) -> str:
        exc = ei[1]
        if exc is None or not any(_is_database_error(e) for e in _chain(exc)):
            return super().formatException(ei)
        parts = []
        for link in reversed(list(_chain(exc))):  # oldest first, as Python prints a chain
            if parts:
                parts.append("\nThen:\n")
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(link.__traceback__))
            text = _database_error_text(link) if _is_database_error(link) else str(link)
            parts.append(f"{type(link).__module__}.{type(link).__qualname__}: {text}\n")
        return "".join(parts).rstrip("\n")


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr for the service's own loggers."""
    root = logging.getLogger("referral_api")
    if any(getattr(h, "_referral_api", False) for h in root.handlers):
        root.setLevel(level.upper())
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._referral_api = True  # type: ignore[attr-defined]
    handler.setFormatter(
        _JsonFormatter(
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
