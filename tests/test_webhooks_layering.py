"""webhooks/ stands below referrals/, cases/ and reports/: it never imports them (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import referral_api.webhooks as webhooks

ABOVE = ("referrals", "cases", "reports")


def _imported_parts(path: Path) -> set[str]:
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level >= 2:  # from ..x import y: a sibling part of referral_api
                parts.add(module.split(".")[0] if module else "")
                parts.update(alias.name for alias in node.names if not module)
            elif module.startswith("referral_api."):
                parts.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("referral_api."))
    return parts


def test_webhooks_imports_nothing_above_it():
    folder = Path(webhooks.__file__).parent
    offenders = {p.name: sorted(_imported_parts(p) & set(ABOVE)) for p in folder.glob("*.py")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_check_sees_an_import_from_above(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from ..referrals.models import Referral\nimport referral_api.cases.models\n")
    assert _imported_parts(bad) >= {"referrals", "cases"}
