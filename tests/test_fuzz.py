"""Schemathesis over the committed OpenAPI document, in-process against the WSGI app.

No answer may be a 5xx or disagree with the document. Bounded by example count, not by time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from referral_api import create_app, dbmigrate
from referral_api.db import database
from tests.conftest import throwaway_database

SPEC = Path(__file__).resolve().parent.parent / "openapi" / "swagger.json"
MAX_EXAMPLES = 25

schema = schemathesis.openapi.from_path(SPEC)


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """An app of its own on a throwaway SQLite database: what the fuzzer writes stays there."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with throwaway_database("sqlite", tmp) as url:
        app = create_app({"database_url": url, "instance_path": str(tmp), "TESTING": True})
        dbmigrate.upgrade(database(app))
        yield app
        database(app).engine.dispose()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case, fuzz_app):
    case.call_and_validate(app=fuzz_app)
