"""OAuth 2.0 server (Authlib) and people's login: clients, tokens, codes, users, endpoints, CLI."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The authorization server, its endpoints and their rate limits."""
    from . import limits, server, views

    server.create_server(app)
    app.register_blueprint(views.bp)
    limits.init_app(app)
