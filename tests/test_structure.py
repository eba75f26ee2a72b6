"""The package's shape: no import cycles, no module over 400 lines, no function over 60 (issue 12)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "referral_api"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The package modules an import statement names (a name imported from a package may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
        prefix = ".".join([*base, node.module] if node.module else base)
    else:
        prefix = node.module or ""
    return [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere in its body (lazy imports count too)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for target in _imported(name, path.name == "__init__.py", node):
                    while target not in modules and "." in target:
                        target = target.rsplit(".", 1)[0]
                    if target in modules and target != name:
                        deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_inside_the_package():
    assert cycles(import_graph(MODULES)) == []


def test_the_cycle_finder_finds_a_lazy_cycle_and_a_package_cycle(tmp_path):
    pkg = tmp_path / "referral_api"
    (pkg / "privacy").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def create_app():\n    from .cli import main\n")
    (pkg / "cli.py").write_text("from . import create_app\n")
    (pkg / "privacy" / "__init__.py").write_text("from .fields import x\n")
    (pkg / "privacy" / "fields.py").write_text("def f():\n    from . import get\n")
    (pkg / "db.py").write_text("from .privacy import fields\n")
    modules = {".".join(p.relative_to(tmp_path).with_suffix("").parts).removesuffix(".__init__"): p
               for p in pkg.rglob("*.py")}
    found = cycles(import_graph(modules))
    assert sorted(found) == [["referral_api", "referral_api.cli"],
                             ["referral_api.privacy", "referral_api.privacy.fields"]]



def test_no_module_over_400_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}



def test_no_function_over_60_lines():
    long = {}
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(PACKAGE)}:{node.name}"] = lines
    assert long == {}


@pytest.mark.parametrize("part", ["audit", "auth", "deadlines", "organisations", "reports", "webhooks",
                                  "console"])
def test_every_part_cli_uses_the_kernel_commands_module(part):
    assert "referral_api.commands" in import_graph(MODULES)[f"referral_api.{part}.cli"]


def _alias_assignments(tree: ast.Module) -> list[str]:
    """Module-level `_S, _R = Stage, Role` or `_S = Stage`: short private names that hide real ones."""
    found = []
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target, value = node.targets[0], node.value
        names = target.elts if isinstance(target, ast.Tuple) else [target]
        values = value.elts if isinstance(value, ast.Tuple) else [value]
        if all(isinstance(n, ast.Name) and n.id.startswith("_") for n in names) and all(
            isinstance(v, ast.Name | ast.Attribute) for v in values
        ):
            found.append(ast.unparse(node))
    return found


def _renamed_imports(tree: ast.Module) -> list[str]:
    """`from ..db import commit as end_work`: a package function imported under another name.

    Modules imported under a qualified name (`services as case_services`) say more, not less, and
    gettext's `_`/`_l` is the convention of its own."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            for alias in node.names:
                if alias.asname and alias.asname != alias.name and alias.name[:1].islower() \
                        and alias.name not in ("ns", "document") and not _is_module(node, alias.name):
                    found.append(f"{alias.name} as {alias.asname}")
    return found


def _is_module(node: ast.ImportFrom, name: str) -> bool:
    return any(m.endswith(f".{name}") for m in MODULES)


def test_no_aliases_that_hide_names():
    hidden = {}
    for path in MODULES.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if found := _alias_assignments(tree) + _renamed_imports(tree):
            hidden[str(path.relative_to(PACKAGE))] = found
    assert hidden == {}


def test_the_alias_finder_finds_both_kinds():
    tree = ast.parse("from ..db import commit as end_work\n_S, _R = Stage, Role\n_X = a.b\nLIMIT = 3\n")
    assert _alias_assignments(tree) == ["_S, _R = (Stage, Role)", "_X = a.b"]
    assert _renamed_imports(tree) == ["commit as end_work"]


# The floors of docs/architecture.md, top first: a module imports its own floor or those below, never above.
FLOORS: list[set[str]] = [
    {"__init__", "wsgi", "cli", "console", "demo", "demo_cases", "demo_people", "key_commands", "prune",
     "models_registry", "backup", "metrics", "gunicorn_conf"},
    {"reports"},
    {"documents", "deadlines"},
    {"referrals"},
    {"cases"},
    {"webhooks", "auth"},
    {"organisations", "records"},
    {"audit", "events", "idempotency", "references", "outbound"},
    {"http", "paging", "access", "privacy", "db", "commands", "health", "dbmigrate", "observability",
     "progress", "contract"},
    {"errors", "config", "validators"},
]


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _floor(module: str) -> int:
    return next(i for i, floor in enumerate(FLOORS) if _part(module) in floor)


def test_every_part_stands_on_one_floor():
    assert {_part(m) for m in MODULES} == set().union(*FLOORS)


def test_no_import_runs_up_a_floor():
    upward = sorted(f"{m} -> {d}" for m, deps in import_graph(MODULES).items() for d in deps
                    if _floor(d) < _floor(m))
    assert upward == []


def _documented_floors() -> list[set[str]]:
    """The floors as docs/architecture.md's table names them (modules `x.py`, parts `x/`), top first."""
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = text.split("## The floors", 1)[1].split("\n\n")[2]
    floors = []
    for row in table.splitlines()[2:]:
        cells = row.split("|")
        names = re.findall(r"`([A-Za-z_]+)(\.py|/)`", cells[2])
        floors.append({name for name, _kind in names})
    return floors


def test_the_architecture_page_names_the_floors_the_code_keeps():
    assert _documented_floors() == FLOORS
