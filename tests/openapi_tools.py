"""The contract's tools for the tests: Redocly and the converters (npm, tools/openapi), and the rule that
under CI=true a missing tool fails the test instead of skipping it (as tests/browser does)."""

from __future__ import annotations

import os
import shutil
import subprocess  # nosec B404 - the pinned tools of tools/openapi, no shell
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools" / "openapi"
SWAGGER = ROOT / "openapi" / "swagger.json"
OPENAPI = ROOT / "openapi" / "openapi.json"


def missing(what: str, how: str) -> None:
    """Fail under CI=true, skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI needs {what} ({how}; see .ci/run)")
    pytest.skip(f"needs {what} ({how})")


def node_tool(name: str) -> Path:
    path = TOOLS / "node_modules" / ".bin" / name
    if not (shutil.which("node") and path.exists()):
        missing(f"node and {name}", "npm ci --prefix tools/openapi --no-audit --no-fund")
    return path


def convert(source: Path, target: Path) -> None:
    """Swagger 2.0 -> OpenAPI 3.1 with the pinned converters, as `make openapi` does."""
    node_tool("swagger2openapi")
    subprocess.run(["node", str(TOOLS / "convert.mjs"), str(source), str(target)],  # nosec B603 B607
                   check=True, capture_output=True, text=True, timeout=120)


def redocly_lint(document: Path) -> subprocess.CompletedProcess:
    redocly = node_tool("redocly")
    return subprocess.run([str(redocly), "lint", str(document), "--format=stylish"],  # nosec B603
                          capture_output=True, text=True, timeout=180, cwd=ROOT,
                          env={**os.environ, "REDOCLY_TELEMETRY": "off",
                               "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"})
