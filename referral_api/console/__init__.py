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
    from ..auth.limits import CONSOLE_CALLBACK_RULES, CONSOLE_START_RULES, limited

    for endpoint, rules in (("console.callback", CONSOLE_CALLBACK_RULES),
                            ("console.login", CONSOLE_START_RULES)):
        app.view_functions[endpoint] = limited(app.view_functions[endpoint], rules, refuse=shell.too_many)
    app.jinja_env.globals.update(REFERRING_KINDS=partner.REFERRING_KINDS)
