"""[project.dependencies] is exactly what src/racker imports at run time.

Every third-party module imported anywhere in src/racker (at the top or inside a function) must
come from a declared runtime dependency, and every declared dependency must be imported; an
optional extra may cover an import that is guarded by ``except ImportError``.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).parents[3]
SRC = ROOT / "src" / "racker"


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9_.\-]+", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    optional = {
        _name(r)
        for extra, reqs in project["optional-dependencies"].items()
        if extra not in {"test", "lint", "dev"}
        for r in reqs
    }
    return runtime, optional


def imported_modules() -> tuple[set[str], set[str]]:
    """Top-level third-party modules imported: (anywhere, only under ``except ImportError``)."""
    plain: set[str] = set()
    guarded: set[str] = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        guarded_nodes = {
            id(node)
            for handler_try in ast.walk(tree)
            if isinstance(handler_try, ast.Try)
            and any(
                isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
                for h in handler_try.handlers
            )
            for stmt in handler_try.body
            for node in ast.walk(stmt)
        }
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"racker", "__future__"}:
                    continue
                (guarded if id(node) in guarded_nodes else plain).add(top)
    return plain, guarded - plain


def distributions(modules: set[str]) -> dict[str, set[str]]:
    owners = packages_distributions()
    found: dict[str, set[str]] = {}
    for module in modules:
        assert module in owners, (
            f"src/racker imports {module!r}, which no installed package provides"
        )
        found[module] = {_name(d) for d in owners[module]}
    return found


def test_every_import_is_declared_and_every_dependency_imported() -> None:
    runtime, optional = declared()
    plain, guarded = imported_modules()
    plain_dists = distributions(plain)
    guarded_dists = distributions(guarded)
    undeclared = {m: d for m, d in plain_dists.items() if not d & runtime}
    assert not undeclared, f"imported at run time but not in [project.dependencies]: {undeclared}"
    unguarded_optional = {m: d for m, d in guarded_dists.items() if not d & (runtime | optional)}
    assert not unguarded_optional, f"optional imports in no extra: {unguarded_optional}"
    used = set().union(*plain_dists.values())
    unused = runtime - used
    assert not unused, (
        f"declared in [project.dependencies] but never imported by src/racker: {unused}"
    )


def test_the_check_sees_imports() -> None:
    """Guards against a vacuous check: known imports are found and attributed."""
    plain, guarded = imported_modules()
    assert {"aiohttp", "click", "yaml", "pyghmi", "jinja2"} <= plain
    assert "uvloop" in guarded
    assert distributions({"yaml"}) == {"yaml": {"pyyaml"}}
