"""The console's shell, shared by every page of every audience: session, CSRF, headers, errors.

A page is a view on `bp` guarded by `page()`: it names the scopes it needs and whether it is MGEC's;
the signed-in person's Actor is then `actor()`, the same Actor the API builds from a bearer token.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from ..access import Actor
from ..db import get_session
from ..errors import DomainError, Forbidden, NotFound, TooManyRequests
from ..http import UPLOAD_LIMIT
from ..validators import same_secret
from . import i18n, oauth, sessions

SESSION_COOKIE = "console_session"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

bp = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    static_folder="static",
    static_url_path="/static",
    template_folder="../templates",
)


def idle_timeout() -> timedelta:
    return timedelta(minutes=current_app.config["SETTINGS"].console_idle_minutes)


def secure_cookies() -> bool:
    """Secure cookies everywhere but development over plain http on the loopback."""
    return current_app.config["SETTINGS"].is_production or request.is_secure


def set_session_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, httponly=True, samesite="Strict", secure=secure_cookies(), path="/console"
    )


def actor() -> Actor:
    """The signed-in person's Actor (inside a view guarded by page())."""
    return g.console.actor


def csrf_token() -> str:
    """The form token of this session: an HMAC of the session's id under the console key."""
    current = g.get("console")
    if current is None:
        return ""
    return oauth.derive("csrf", str(current.row.id)).hex()


def csrf_ok(sent: str) -> bool:
    """Whether `sent` is this session's form token."""
    expected = csrf_token()
    return bool(sent) and bool(expected) and same_secret(sent, expected)


def _csrf_ok() -> bool:
    if getattr(current_app.view_functions.get(request.endpoint or ""), UPLOAD_LIMIT, None):
        return True  # an upload reads its own multipart body in memory and checks the token (documents.py)
    return csrf_ok(request.form.get("csrf_token", ""))


def page(*scopes: str, mgec: bool = True, partner: bool = False) -> Callable:
    """Guard a console page: signed in, (for MGEC pages) a person of MGEC, (for partners' pages) a person
    of a partner organisation, holding every scope named."""

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            current = g.get("console")
            if current is None:
                return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
            who = current.actor
            wrong_side = (mgec and not who.is_mgec) or (partner and who.is_mgec)
            if wrong_side or not who.is_person or not all(who.has(s) for s in scopes):
                raise Forbidden("This page is not for your role.")
            return fn(*args, **kwargs)

        if partner and mgec:
            raise TypeError("a console page is MGEC's or partners', not both")
        wrapper.__console_scopes__ = frozenset(scopes)  # type: ignore[attr-defined]
        wrapper.__console_mgec__ = mgec  # type: ignore[attr-defined]
        wrapper.__console_partner__ = partner  # type: ignore[attr-defined]
        return wrapper

    return decorator


def public(fn: Callable) -> Callable:
    """Mark a console view that needs no sign-in (sign-in itself, language, static files)."""
    fn.__console_public__ = True  # type: ignore[attr-defined]
    return fn


@bp.before_request
def _load_session() -> Response | None:
    g.console = None
    if request.endpoint == "console.static":  # a stylesheet or script: no session read, no refresh
        return None
    if "Authorization" in request.headers:
        # The console is for people signed in here; a system's bearer token opens no page of it.
        return render_error(403)
    try:
        g.console = sessions.current(get_session(), request.cookies.get(SESSION_COOKIE), idle=idle_timeout())
    except sessions.Expired:
        target = url_for("console.login_page", expired=1)
        response = redirect(target) if request.method == "GET" else render_error(401, expired=True)
        response.delete_cookie(SESSION_COOKIE, path="/console")
        return response
    if request.method == "POST" and not _csrf_ok():
        return render_error(400, csrf=True)
    return None


def _headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-store"
    return response


bp.after_request(_headers)


def render_error(status: int, **context: Any) -> Response:
    """An error page in the chosen language, with the request id to quote."""
    html = render_template("console/error.html", status=status, request_id=g.get("request_id", ""), **context)
    return _headers(Response(html, status=status, mimetype="text/html"))


def too_many(refused: TooManyRequests) -> Response:
    """A limit reached (429): the page says to wait, the header for how long."""
    response = render_error(429)
    response.headers.update(refused.headers or {})
    return response


def _on_error(exc: Exception) -> Response:
    if isinstance(exc, OAuth2Error):  # a service's InsufficientScope (documents): this person may not
        return render_error(403 if exc.status_code == 403 else 400)
    if isinstance(exc, DomainError):
        return render_error(exc.status if exc.status in (400, 403, 404, 409, 412) else 400)
    if isinstance(exc, HTTPException):
        code = exc.code or 500
        if code == 413:  # a body over an upload's limit, refused before the view
            return render_error(413, too_large_mb=current_app.config["SETTINGS"].document_max_mb)
        return render_error(code if code in (400, 403, 404, 405) else 400)
    current_app.logger.error("console error", exc_info=exc)
    return render_error(500)


bp.register_error_handler(Exception, _on_error)


@bp.route("/<path:_rest>", methods=["GET", "POST"])
@public
def unknown(_rest: str) -> Response:
    """Any other /console address: the console's own 404 page, not the API's problem+json."""
    raise NotFound("No such page.")


def _root() -> Response:
    return redirect(url_for("console.home"))


def render(template: str, status: int = 200, **context: Any) -> Response:
    """Render a console page (the templates read csrf_token(), the language and the person)."""
    return Response(render_template(template, **context), status=status, mimetype="text/html")


def init_app(app: Flask) -> None:
    """Languages, template globals, the blueprint (its routes already joined) and the `/` front door."""
    i18n.init_app(app)
    from .labels import word, words

    app.jinja_env.globals.update(csrf_token=csrf_token, word=word, words=words)
    app.register_blueprint(bp)
    if "root" in app.view_functions:
        # flask-restx claims `/` for a 404 of its own: `/` is the console's front door instead.
        app.view_functions["root"] = _root
    else:
        app.add_url_rule("/", "root", _root)
