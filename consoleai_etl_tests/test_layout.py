"""The architecture the layout shows: a framework-free core, one writer of the bookkeeping."""

from __future__ import annotations

import ast
import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "consoleai_etl" / "core"
BOOKKEEPING_SQL = re.compile(r"\b(FROM|INTO|UPDATE|JOIN|TABLE)\s+consoleai_etl\.\w+")


def modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_core_never_imports_dagster() -> None:
    for path in modules():
        tree = ast.parse(path.read_text())
        imported = {
            alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names
        }
        imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {m for m in imported if m.split(".")[0] == "dagster"}, path


def test_only_bookkeeping_writes_sql_on_the_bookkeeping_tables() -> None:
    owners = set()
    for path in modules():
        strings = [
            n.value
            for n in ast.walk(ast.parse(path.read_text()))
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
        if any(BOOKKEEPING_SQL.search(s) for s in strings):
            owners.add(path.relative_to(CORE).as_posix())
    assert owners == {"target/bookkeeping.py"}


def test_the_core_is_grouped_by_concern() -> None:
    folders = {p.parent.relative_to(CORE).as_posix() for p in modules()}
    assert folders == {".", "source", "plan", "encode", "target", "verify", "run", "types"}
    assert {p.name for p in CORE.glob("*.py")} == {"__init__.py", "errors.py"}
