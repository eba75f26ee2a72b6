"""The MGEC repatriation and inter-agency referral API."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from . import errors, observability, privacy, webhooks
from .config import Settings
from .db import Database
from .documents import storage as documents_storage
from .http import check_request_body, check_request_text, make_api

__all__ = ["create_app"]


def _settings(config: Settings | Mapping[str, Any] | None) -> tuple[Settings, dict[str, Any]]:
    if isinstance(config, Settings):
        return config, {}
    overrides = dict(config or {})
    flask_config = {k: overrides.pop(k) for k in list(overrides) if k.isupper()}
    return Settings.from_env(**overrides), flask_config


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: settings, database, HTTP conventions, namespaces, CLI.

    `config` is a Settings, or a mapping of Settings fields (lower case) and Flask keys (upper case)
    that override the environment.
    """
    settings, flask_config = _settings(config)
    package_root = Path(__file__).resolve().parent.parent
    instance_path = settings.resolved_instance_path(str(package_root / "instance"))
    app = Flask(__name__, instance_path=str(instance_path.resolve()))
    app.config.update(
        SETTINGS=settings,
        MAX_CONTENT_LENGTH=settings.max_content_length,
        DEBUG=settings.debug,
        PROPAGATE_EXCEPTIONS=False,
        RESTX_MASK_SWAGGER=False,
        ERROR_INCLUDE_MESSAGE=False,
        JSON_SORT_KEYS=False,
    )
    app.config.update(flask_config)
    observability.configure_logging(settings.log_level)

    database_url = settings.database_url
    if not database_url:
        os.makedirs(app.instance_path, exist_ok=True)
        database_url = f"sqlite:///{Path(app.instance_path) / 'referral_api.sqlite3'}"
    Database(database_url).init_app(app)
    privacy.init_app(app, settings)
    documents_storage.init_app(app, settings)
    webhooks.init_app(app, settings)

    if settings.trusted_proxy_count:
        # The address, scheme and host the last N proxies saw; never more than they can vouch for.
        n = settings.trusted_proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    observability.init_app(app)
    from . import metrics

    metrics.init_app(app)
    app.before_request(check_request_body)
    app.before_request(check_request_text)
    app.register_error_handler(Exception, errors.render)

    from . import auth

    auth.init_app(app)

    _add_api(app, settings)
    from . import console

    console.init_app(app)
    return app


def _add_api(app: Flask, settings: Settings) -> None:
    """The HTTP API: every part's namespace, the OAuth endpoints in the document, under app.extensions."""
    api = make_api(swagger_ui=settings.swagger_ui)
    from .audit.api import ns as audit_ns
    from .auth.api import ns as me_ns
    from .cases.api import ns as cases_ns
    from .cases.api import services_ns
    from .cases.directory_api import ns as directory_ns
    from .cases.shelters_api import shelters_ns
    from .documents.api import ns as documents_ns
    from .health import ns as health_ns
    from .referrals.api import ns as referrals_ns
    from .reports.api import erasure_ns
    from .reports.api import ns as reports_ns
    from .webhooks.api import ns as webhooks_ns

    namespaces = (health_ns, me_ns, referrals_ns, cases_ns, services_ns, shelters_ns, audit_ns, webhooks_ns)
    for ns in (*namespaces, directory_ns, documents_ns, reports_ns, erasure_ns):
        api.add_namespace(ns)
    from .auth.openapi import document as document_oauth

    document_oauth(api)
    from . import contract

    api.extend_schema(functools.partial(contract.extend, api))
    from .auth import docs_ui

    api.documentation(functools.partial(docs_ui.render, api))
    api.init_app(app)
    app.extensions["referral_api.api"] = api
