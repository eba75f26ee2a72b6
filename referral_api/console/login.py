"""Sign-in through the people's login (/oauth/authorize), the callback, sign-out, language."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Response, g, redirect, request, url_for

from ..access import ALL_SCOPES
from ..auth.store import endpoint_url
from ..db import get_session
from . import i18n, oauth, sessions
from .shell import SESSION_COOKIE, bp, page, public, render, render_error, secure_cookies, set_session_cookie

LANGUAGE_MAX_AGE = 365 * 24 * 3600


def _redirect_uri() -> str:
    return endpoint_url(url_for("console.callback"))


@bp.route("/")
@public
def home() -> Response:
    """Signed in: the review queue (MGEC) or the cases taking part in (partners); otherwise sign in."""
    if g.console is None:
        return redirect(url_for("console.login_page"))
    if not g.console.actor.is_mgec:
        return redirect(url_for("console.partner_cases"))
    return redirect(url_for("console.queue"))


@bp.route("/login")
@public
def login_page() -> Response:
    """After a time-out or a sign-out, say so; otherwise go straight to the sign-in form."""
    if request.args.get("expired") or request.args.get("signed_out"):
        return render("console/signed_out.html", expired=bool(request.args.get("expired")))
    return redirect(url_for("console.login"))


@bp.route("/login/start")
@public
def login() -> Response:
    """Start the authorization code flow with PKCE (S256) and a state bound to this browser."""
    session = get_session()
    client = oauth.find_client(session)
    if client is None:
        return render_error(503, unregistered=True)
    cookie = sessions.start(session, language=i18n.language())
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": _redirect_uri(),
            "scope": " ".join(sorted(ALL_SCOPES)),
            "state": sessions.oauth_state(cookie),
            "code_challenge": sessions.pkce_challenge(cookie),
            "code_challenge_method": "S256",
        }
    )
    response = redirect(f"{url_for('oauth.authorize')}?{query}")
    set_session_cookie(response, cookie)
    set_language_cookie(response, i18n.language())  # the sign-in form speaks the console's language
    return response


@bp.route("/callback")
@public
def callback() -> Response:
    """Exchange the code in-process; a new session id goes to the browser."""
    code, state = request.args.get("code", ""), request.args.get("state", "")
    if not code or not state:
        return render_error(400, sign_in_failed=True)
    try:
        cookie = sessions.finish(
            get_session(),
            request.cookies.get(SESSION_COOKIE),
            code=code,
            state=state,
            redirect_uri=_redirect_uri(),
        )
    except sessions.SignInFailed:
        return render_error(400, sign_in_failed=True)
    response = redirect(url_for("console.home"))
    set_session_cookie(response, cookie)
    return response


@bp.route("/logout", methods=["POST"])
@page(mgec=False)
def logout() -> Response:
    """Sign out: the token is revoked server-side and the cookie dropped."""
    sessions.end(get_session(), g.console.row)
    response = redirect(url_for("console.login_page", signed_out=1))
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


def _safe_next(target: str) -> str:
    """Only a path of this service: never another site (an open redirect)."""
    clean = not any(ch.isspace() or ord(ch) < 32 or ch == "\\" for ch in target)  # browsers drop tabs
    if clean and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("console.home")


@bp.route("/language/<code>")
@public
def language(code: str) -> Response:
    """Switch the language; remembered in a cookie and in the session."""
    if code not in i18n.LANGUAGES:
        return render_error(404)
    if g.console is not None:
        g.console.row.language = code
        get_session().commit()
    response = redirect(_safe_next(request.args.get("next", "")))
    set_language_cookie(response, code)
    return response


def set_language_cookie(response: Response, code: str) -> None:
    response.set_cookie(
        i18n.LANGUAGE_COOKIE,
        code,
        max_age=LANGUAGE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=secure_cookies(),
        path="/",
    )
