"""Webhooks: partners' subscriptions, and signed, at-least-once delivery of the outbox to them.

For the parts above (referrals/, cases/): register who may see each resource type with
`visibility.register(resource_type, rule)` at import time; see visibility.py. Nothing else is needed:
services publish to the outbox (events.publish) and the worker (`referral-api webhooks work`) fans
each event out to the subscriptions of the organisations the rule returns, and delivers it.

Modules: models (subscriptions, deliveries, attempts, the fan-out cursor), signing (Standard
Webhooks), transport (the HTTP call, through the address guard in ../outbound.py), schedule (back-off),
fanout, delivery (claim, send, record), worker (the loop), services, schemas, api, cli.
"""

from __future__ import annotations

import importlib

from flask import Flask

from ..config import Settings
from . import visibility

__all__ = ["init_app", "visibility"]


def init_app(app: Flask, settings: Settings) -> None:
    """Load the test hook's visibility rules (WEBHOOKS_TEST_VISIBILITY_MODULE, never in production)."""
    if settings.webhooks_test_visibility_module:
        # A test hook: worker processes started by the end-to-end tests register a rule for a test
        # resource type this way. Settings.check() refuses it in production.
        importlib.import_module(settings.webhooks_test_visibility_module)
