"""The declared dependencies are exactly the ones used: every import is declared (not merely
installed by something else), every runtime dependency is imported by the product or run
as one of its commands, and every pin is exact."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Declared, used as programs rather than imported.
COMMANDS = {
    "dagster-webserver": "the web UI (`make ui`, the browser test)",
    "ruff": "`make lint`",
    "setuptools": "the build backend, for the no-compiler build test (--no-build-isolation)",
}


def _name(requirement: str) -> str:
    """``psycopg[binary]==3.3.9`` -> ``psycopg`` (normalised as pip does)."""
    return re.split(r"[\[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


RUNTIME = {_name(r) for r in PROJECT["dependencies"]}
DEV = {_name(r) for r in PROJECT["optional-dependencies"]["dev"]}


def third_party_imports(*folders: str) -> dict[str, set[str]]:
    """Top-level module imported -> the files importing it, for modules outside the standard
    library and this project."""
    found: dict[str, set[str]] = {}
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and not top.startswith("consoleai_etl"):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(module: str) -> set[str]:
    """The distributions providing ``module``; a module installed on no Python here (pgserver
    on 3.13, where its requirement's marker leaves it out) is taken as its own name."""
    return {d.lower().replace("_", "-") for d in packages_distributions().get(module, [module])}


def test_every_pin_is_exact() -> None:
    for requirement in [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]:
        assert re.fullmatch(r"[\w\-.\[\]]+==[\w.]+(; .+)?", requirement), requirement


def test_the_product_imports_only_its_runtime_dependencies() -> None:
    for module, files in third_party_imports("consoleai_etl").items():
        assert distributions(module) & RUNTIME, f"{module} (imported by {files}) is not declared"


def test_tests_and_benchmarks_import_only_declared_dependencies() -> None:
    for module, files in third_party_imports("consoleai_etl_tests", "benchmarks").items():
        assert distributions(module) & (RUNTIME | DEV), f"{module} ({files}) is not declared"


def test_every_declared_dependency_is_used() -> None:
    product = set().union(*map(distributions, third_party_imports("consoleai_etl")))
    tests = set().union(
        *map(distributions, third_party_imports("consoleai_etl_tests", "benchmarks"))
    )
    assert RUNTIME - product - COMMANDS.keys() == set()
    assert DEV - tests - product - COMMANDS.keys() == set()
