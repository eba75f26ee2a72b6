"""The people's pages: server-rendered HTML on the same domain services as the API (README.md)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Languages, the console's blueprints, its security headers and its error pages."""
    from . import (  # noqa: F401  (their routes join shell.bp first)
        admin,
        cases,
        documents,
        erasure,
        intake,
        login,
        partner,
        people,
        queue,
        reports,
        shell,
        trail,
        webhooks,
    )

    shell.init_app(app)
    from ..auth.limits import CONSOLE_CALLBACK_RULES, limited

    app.view_functions["console.callback"] = limited(app.view_functions["console.callback"],
                                                     CONSOLE_CALLBACK_RULES, refuse=shell.too_many)
    app.jinja_env.globals.update(REFERRING_KINDS=partner.REFERRING_KINDS)
