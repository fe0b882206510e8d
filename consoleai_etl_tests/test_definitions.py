"""The Dagster definitions built from a catalog: assets, deps, checks, jobs."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg

from consoleai_etl.core.source.catalog import Table
from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.definitions import build_definitions, build_job
from consoleai_etl.defs.table_assets import guarded_step
from consoleai_etl.demo.sample import TABLE_ORDER
from consoleai_etl_tests.helpers import named


def asset_graph(defs: dg.Definitions) -> dict[str, set[str]]:
    """Each asset's parents, by name (their keys without the target's prefix)."""
    graph = defs.resolve_asset_graph()
    return {
        named(key): {named(p) for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }


def test_missing_source_still_shows_the_consoleai_domain_tables(tmp_path: Path) -> None:
    defs = build_definitions(tmp_path / "does-not-exist.sqlite")
    graph = asset_graph(defs)
    assert set(graph) == {*TABLE_ORDER, "migration_run", "migration_report"}
    assert graph["user_roles"] == {"users", "roles"}
    assert graph["migration_run"] == set(TABLE_ORDER)
    assert graph["migration_report"] == {"migration_run"}
    assert defs.resolve_job_def("legacy_migration_job")
    assert defs.resolve_job_def("consistency_check_job")


def test_any_sqlite_file_becomes_assets_with_fk_deps_and_safe_names(tmp_path: Path) -> None:
    db = tmp_path / "other.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            'CREATE TABLE "Order Lines" (id INTEGER PRIMARY KEY, '
            "order_id INTEGER REFERENCES orders(id));"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, placed TEXT);"
            "CREATE TABLE notes (body TEXT);"
        )
    defs = build_definitions(db)
    graph = asset_graph(defs)
    [lines_key] = [k for k in graph if k.startswith("Order_Lines_")]
    assert graph[lines_key] == {"orders"}
    assert {"orders", "notes", "migration_report"} <= set(graph)
    check_keys = defs.resolve_asset_graph().asset_check_keys
    assert {(named(k.asset_key), k.name) for k in check_keys} == {
        (lines_key, "row_count"),
        (lines_key, "checksum"),
        (lines_key, "not_null"),
        (lines_key, "primary_key"),
        (lines_key, "foreign_keys"),
        (lines_key, "declared_types"),
        ("orders", "row_count"),
        ("orders", "checksum"),
        ("orders", "not_null"),
        ("orders", "primary_key"),
        ("orders", "declared_types"),
        ("notes", "row_count"),
        ("notes", "checksum"),
        ("notes", "not_null"),
        ("notes", "declared_types"),
    }


def test_an_unexpected_error_in_a_table_step_becomes_the_tables_error() -> None:
    table = Table("t", (), (), (), (), False, "")

    def broken() -> None:
        raise RuntimeError("boom at postgresql://u:secret@host/db")

    report = guarded_step(dg.build_op_context(), table, broken)

    assert report.table == "t"
    assert report.error == "unexpected RuntimeError: boom at postgresql://u:***@host/db"


def test_the_tables_are_one_subsettable_multi_asset_as_dagsters_integrations_build_them(
    sample_db: Path,
) -> None:
    defs = build_definitions(sample_db, target=TargetName("consoleai", "public"))
    job = defs.resolve_job_def("legacy_migration_job")
    assert {node.name for node in job.graph.nodes} == {"legacy_tables", "migration_report"}
    tables = defs.resolve_assets_def(dg.AssetKey(["consoleai", "public", "users"]))
    assert tables.can_subset and tables.node_def.name == "legacy_tables"
    assert {named(k) for k in tables.keys} == {*TABLE_ORDER, "migration_run"}
    checked = {(named(k.asset_key), k.name) for k in tables.check_keys}
    assert {table for table, _ in checked} == set(TABLE_ORDER)
    assert {"row_count", "checksum", "primary_key"} <= {n for t, n in checked if t == "users"}


# Run in a fresh interpreter: records every SQLite file the process opens, as Python's
# audit hook sees it, while importing the console script's module, then while Dagster
# loads the code location the way ``-m consoleai_etl`` and the web UI do.
OPENED_FILES = """
import sys
opened = []
sys.addaudithook(lambda event, args: event == "sqlite3.connect" and opened.append(str(args[0])))
import consoleai_etl.cli.main
print(sum(name in path for path in opened))
from dagster._core.workspace.autodiscovery import loadable_targets_from_python_module
[target] = loadable_targets_from_python_module("consoleai_etl", None)
defs = target.target_definition()
print(sum(name in path for path in opened))
print(sorted(key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()))
"""


def test_the_command_builds_no_code_location_and_dagster_still_finds_it(tmp_path: Path) -> None:
    """``consoleai-etl`` imports the package to run a job of its own SOURCE: importing it
    must not read the file CONSOLEAI_SQLITE_PATH names (the code location's definitions are
    built when Dagster loads them, ``@dg.definitions``), and Dagster still finds and builds
    them from that file, their keys naming the target its variables give."""
    db = tmp_path / "only_orders.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
    env = {
        **os.environ,
        "CONSOLEAI_SQLITE_PATH": str(db),
        "CONSOLEAI_PG_DSN": "postgresql://app_user@db.example.com/shop",
        "CONSOLEAI_TARGET_SCHEMA": "legacy",
    }
    done = subprocess.run(
        [sys.executable, "-c", f"name = {db.name!r}\n{OPENED_FILES}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    on_import, on_load, assets = done.stdout.splitlines()
    assert (on_import, on_load) == ("0", "1")
    keys = ["shop/legacy/migration_report", "shop/legacy/migration_run", "shop/legacy/orders"]
    assert assets == str(keys)


def test_the_commands_job_is_built_once_until_its_file_changes(tmp_path: Path) -> None:
    """Dagster loads the command's job four times in a run: it is built once, and built
    again when the file has changed (a table added in WAL mode, so only the -wal moves)."""
    db = tmp_path / "shop.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
        conn.commit()
        first = build_job(str(db), "legacy_migration_job", "shop", "public")
        assert build_job(str(db), "legacy_migration_job", "shop", "public") is first
        conn.execute("CREATE TABLE refunds (id INTEGER PRIMARY KEY)")
        conn.commit()
        again = build_job(str(db), "legacy_migration_job", "shop", "public")
        other_target = build_job(str(db), "legacy_migration_job", "shop", "app")
    tables = {k.to_user_string() for k in again.asset_layer.asset_graph.get_all_asset_keys()}
    assert again is not first and {"shop/public/orders", "shop/public/refunds"} <= tables
    keys = other_target.asset_layer.asset_graph.get_all_asset_keys()
    assert {"shop/app/orders", "shop/app/refunds"} <= {k.to_user_string() for k in keys}
