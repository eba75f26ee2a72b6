"""The committed OpenAPI document is what the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from referral_api.cli import openapi_document
from tests.conftest import _cli_runner

COMMITTED = Path(__file__).resolve().parent.parent / "openapi" / "swagger.json"


def test_committed_openapi_matches_the_code(base_app):
    generated = openapi_document(base_app)
    committed = COMMITTED.read_text(encoding="utf-8")
    assert committed == generated, (
        "openapi/swagger.json is stale: run `referral-api openapi export` and commit the result"
    )


def test_every_operation_is_documented(base_app):
    spec = json.loads(openapi_document(base_app))
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if method == "parameters":
                continue
            assert op.get("summary"), f"{method.upper()} {path} has no summary"
            assert op.get("responses"), f"{method.upper()} {path} documents no response"


def test_export_command_writes_the_document(base_app, tmp_path):
    out = tmp_path / "swagger.json"
    result = _cli_runner(base_app)("openapi", "export", "--output", out)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == openapi_document(base_app)
