"""The declared dependencies are exactly the ones used: every import is declared (not merely
installed by something else), every runtime dependency is imported by the product or run
as one of its commands, the ``bench`` extra serves the benchmarks alone, and every pin is
exact."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Declared, used other than by an import: programs run, or files loaded.
NOT_IMPORTED = {
    "dagster-webserver": "the web UI (`make ui`, the browser test)",
    "ruff": "`make lint`",
    "setuptools": "the build backend, for the no-compiler build test (--no-build-isolation)",
    "duckdb-ext-postgres": "DuckDB's postgres extension, loaded by benchmarks/duckdb_copy.py",
    "duckdb-ext-sqlite": "DuckDB's sqlite extension, loaded by benchmarks/duckdb_copy.py",
}
# This project's own top-level packages (the benchmarks' scripts import their neighbours).
LOCAL = {"consoleai_etl", "consoleai_etl_tests", "benchmarks"}


def _name(requirement: str) -> str:
    """``psycopg[binary]==3.3.9`` -> ``psycopg`` (normalised as pip does)."""
    return re.split(r"[\[=<>!~ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


RUNTIME = {_name(r) for r in PROJECT["dependencies"]}
DEV = {_name(r) for r in PROJECT["optional-dependencies"]["dev"]}
BENCH = {_name(r) for r in PROJECT["optional-dependencies"]["bench"]}


def third_party_imports(*folders: str) -> dict[str, set[str]]:
    """Top-level module imported -> the files importing it, for modules outside the standard
    library and this project (its packages, or a module beside the importing file)."""
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
                    local = top in LOCAL or (path.parent / f"{top}.py").is_file()
                    if top not in sys.stdlib_module_names and not local:
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(module: str) -> set[str]:
    """The distributions providing ``module``; a module installed on no Python here (pgserver
    on 3.13, where its requirement's marker leaves it out) is taken as its own name."""
    return {d.lower().replace("_", "-") for d in packages_distributions().get(module, [module])}


def test_every_pin_is_exact() -> None:
    extras = PROJECT["optional-dependencies"]
    for requirement in [*PROJECT["dependencies"], *extras["dev"], *extras["bench"]]:
        assert re.fullmatch(r"[\w\-.\[\]]+==[\w.]+(; .+)?", requirement), requirement


def test_the_product_imports_only_its_runtime_dependencies() -> None:
    for module, files in third_party_imports("consoleai_etl").items():
        assert distributions(module) & RUNTIME, f"{module} (imported by {files}) is not declared"


def test_tests_import_only_declared_dependencies() -> None:
    for module, files in third_party_imports("consoleai_etl_tests").items():
        assert distributions(module) & (RUNTIME | DEV), f"{module} ({files}) is not declared"


def test_benchmarks_import_only_declared_dependencies() -> None:
    for module, files in third_party_imports("benchmarks").items():
        declared = RUNTIME | DEV | BENCH
        assert distributions(module) & declared, f"{module} ({files}) is not declared"


def test_the_bench_extra_is_the_benchmarks_alone() -> None:
    """Never a runtime or test dependency, and each DuckDB extension wheel is the build for
    the pinned DuckDB (their versions are DuckDB's, plus a build date)."""
    assert BENCH.isdisjoint(RUNTIME | DEV)
    pins = dict(r.split("==") for r in PROJECT["optional-dependencies"]["bench"])
    extensions = [name for name in pins if name.startswith("duckdb-ext-")]
    assert extensions
    for name in extensions:
        assert pins[name].startswith(pins["duckdb"] + "."), (name, pins[name])


def test_every_declared_dependency_is_used() -> None:
    product = set().union(*map(distributions, third_party_imports("consoleai_etl")))
    tests = set().union(
        *map(distributions, third_party_imports("consoleai_etl_tests", "benchmarks"))
    )
    bench = set().union(*map(distributions, third_party_imports("benchmarks")))
    assert RUNTIME - product - NOT_IMPORTED.keys() == set()
    assert DEV - tests - product - NOT_IMPORTED.keys() == set()
    assert BENCH - bench - NOT_IMPORTED.keys() == set()
