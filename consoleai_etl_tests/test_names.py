"""Any table or column name: valid, unique, stable Dagster asset keys, and every table in
PostgreSQL under its source spelling, through a real Dagster run."""

from __future__ import annotations

import hashlib
import keyword
import random
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from dagster import AssetKey, ExecuteInProcessResult, TableSchema
from dagster._core.definitions.utils import DISALLOWED_NAMES, is_valid_name
from psycopg import sql

from consoleai_etl.core.errors import SourceError
from consoleai_etl.core.plan.names import (
    EMPTY_NAME,
    SYSTEM_COLUMNS,
    dagster_name,
    dagster_names,
    pg_clashes,
    pg_column,
    pg_identifier,
)
from consoleai_etl.core.run.preflight import check_source
from consoleai_etl.core.source.catalog import Catalog, introspect, sqlite_quote
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.checks import RESERVED_NAMES, asset_keys
from consoleai_etl_tests.helpers import fetch, named, run_job

OWN_NAMES = [
    "legacy_tables",
    "migration_run",
    "migration_report",
    "settings",
    "legacy_migration_job",
]
# Names that differ only by Unicode case (SQLite folds ASCII case only, so both exist), that
# differ only by punctuation, or that spell another name's derived key.
TRICKY_NAMES = [
    "Émile", "émile", "a-b", "a_b", "a b", dagster_name("a-b"), "a__deadbeef",
    "", "123", "_", "___", "日本", "users", "x" * 300,
]  # fmt: skip
ALL_NAMES = sorted(
    {*DISALLOWED_NAMES, *keyword.kwlist, *keyword.softkwlist, *OWN_NAMES, *TRICKY_NAMES}
)
# Two names whose short derived keys collide (found by a birthday search over names whose
# readable part is "a"): the catalog-wide mapping must still keep them apart.
HASH_TWINS = ["a?!$*", "a!?!+!"]


def test_dagster_keys_are_valid_unique_and_stable_for_every_name() -> None:
    mapped = dagster_names(ALL_NAMES, RESERVED_NAMES)
    assert all(is_valid_name(key) for key in mapped.values()), mapped
    assert len(set(mapped.values())) == len(ALL_NAMES)
    assert not set(mapped.values()) & {"legacy_tables", "migration_run", "migration_report"}
    assert mapped["settings"] == "settings"  # a dependency named like the resource is fine
    shuffled = ALL_NAMES[::-1]
    random.Random(7).shuffle(shuffled)
    assert dagster_names(shuffled, RESERVED_NAMES) == mapped  # order never matters


def test_ordinary_names_keep_their_spelling_and_the_rest_carry_a_hash() -> None:
    for name in ["users", "a_b", "Class", "match", "_", "123", "Order_Lines", "x" * 300]:
        assert dagster_name(name, RESERVED_NAMES) == name
    assert dagster_name("class", RESERVED_NAMES) == "class__" + _sha256("class")[:8]
    assert dagster_name("Émile") == "Emile__" + _sha256("Émile")[:8]
    assert dagster_name("émile") == "emile__" + _sha256("émile")[:8]
    assert dagster_name("日本").startswith("table__")
    assert dagster_name("") == "table__" + _sha256("")[:8]


def test_a_name_spelled_like_a_derived_key_is_derived_too() -> None:
    derived = dagster_name("a-b")
    assert re.fullmatch(r"a_b__[0-9a-f]{8}", derived)
    assert dagster_name(derived) not in (derived, dagster_name("a-b"))
    mapped = dagster_names(["a-b", "a_b", "a b", derived])
    assert len(set(mapped.values())) == 4 and mapped["a_b"] == "a_b"


def test_colliding_short_hashes_get_the_whole_digest() -> None:
    first, second = HASH_TWINS
    assert dagster_name(first) == dagster_name(second)  # the case being tested
    mapped = dagster_names([*HASH_TWINS, "users"])
    assert mapped[first] == "a__" + _sha256(first) and mapped[second] == "a__" + _sha256(second)
    assert mapped["users"] == "users"
    assert dagster_names(HASH_TWINS[::-1]) == {k: mapped[k] for k in HASH_TWINS}


def test_asset_keys_of_a_catalog_follow_the_mapping() -> None:
    catalog = introspect(_source_with(sqlite3.connect(":memory:"), ["class", "users"]))
    keys = asset_keys(catalog.tables)
    assert keys["users"].to_user_string() == "users"
    assert keys["class"].to_user_string() == dagster_name("class", RESERVED_NAMES)


def test_reserved_names_are_dagsters_own_plus_this_code_locations() -> None:
    assert set(DISALLOWED_NAMES) <= RESERVED_NAMES
    assert {"legacy_tables", "migration_run", "migration_report"} <= RESERVED_NAMES


def test_empty_name_gets_a_fixed_postgresql_name_and_clashes_are_found() -> None:
    assert pg_identifier("") == EMPTY_NAME
    assert pg_clashes(["", "users", "a" * 70]) == []
    long = "a" * 70
    assert pg_clashes([pg_identifier(long), "users", long, EMPTY_NAME, ""]) == [
        ("", EMPTY_NAME),
        tuple(sorted([pg_identifier(long), long])),
    ]


def test_preflight_stops_on_names_that_share_a_postgresql_name(tmp_path: Path) -> None:
    db = tmp_path / "clash.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            f'CREATE TABLE "" (a INTEGER); CREATE TABLE "{EMPTY_NAME}" (a INTEGER);'
            'CREATE TABLE t ("" INTEGER, "(empty name)" INTEGER);'
        )
    with pytest.raises(SourceError) as raised:
        check_source(db)
    message = str(raised.value)
    assert "\n" not in message and str(db) in message
    assert f"tables '' and '{EMPTY_NAME}' would be one PostgreSQL table, '{EMPTY_NAME}'" in message


def test_preflight_names_columns_that_share_a_postgresql_name(tmp_path: Path) -> None:
    db = tmp_path / "clash.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(f'CREATE TABLE t ("" INTEGER, "{EMPTY_NAME}" INTEGER);')
    expected = f"table t: columns '' and '{EMPTY_NAME}' would be one column, '{EMPTY_NAME}'"
    with pytest.raises(SourceError, match=re.escape(expected)):
        check_source(db)


def _sha256(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _source_with(conn: sqlite3.Connection, names: list[str]) -> sqlite3.Connection:
    """One table per name: an integer key, a column spelled like the table, a column named
    "" and two rows; the table ``input`` points at ``settings`` and ``from`` at ``class``."""
    parents = {"input": "settings", "from": "class"}
    for name in names:
        refs = f" REFERENCES {sqlite_quote(parents[name])}" if name in parents else ""
        same = f", {sqlite_quote(name)} TEXT" if name else ""  # no second "" column
        conn.execute(
            f'CREATE TABLE {sqlite_quote(name)} (id INTEGER PRIMARY KEY{refs}{same}, "" TEXT)'
        )
        values = ", ".join("?" * (3 if same else 2))
        rows = [(i, *([f"{name}:{i}"] if same else []), f"empty:{i}") for i in (1, 2)]
        conn.executemany(f"INSERT INTO {sqlite_quote(name)} VALUES ({values})", rows)
    conn.commit()
    return conn


def _catalog_of(path: Path) -> Catalog:
    with closing(sqlite3.connect(path)) as conn:
        return introspect(conn)


def _column_schema(result: ExecuteInProcessResult, key: AssetKey) -> TableSchema:
    """The ``dagster/column_schema`` metadata the run recorded for ``key`` (whatever its
    target's prefix)."""
    events = result.get_asset_materialization_events()
    [event] = [e for e in events if named(e.asset_key) == named(key)]
    return event.materialization.metadata["dagster/column_schema"].value


def test_a_run_migrates_tables_with_any_name(tmp_path: Path, pg_dsn: str) -> None:
    db = tmp_path / "names.sqlite"
    names = [*ALL_NAMES, *HASH_TWINS]
    _source_with(sqlite3.connect(db), names).close()
    defs = build_definitions(db)
    keys = {named(k) for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert len(keys) == len(names) + 2  # every table, migration_run and the report

    result, report = run_job(db, pg_dsn, tmp_path)

    assert result.success, report["reasons"]
    assert report["status"] == "success"
    assert {t["table"] for t in report["tables"]} == set(names)
    for name in names:
        target = pg_identifier(name)
        rows = fetch(
            pg_dsn,
            sql.SQL("SELECT * FROM public.{} ORDER BY id").format(sql.Identifier(target)),
        )
        same = [[f"{name}:{i}"] for i in (1, 2)] if name else []
        assert rows == [(i, *(same[i - 1] if same else []), f"empty:{i}") for i in (1, 2)]
    columns = fetch(
        pg_dsn,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'class' "
        "ORDER BY ordinal_position",
    )
    assert columns == [("id",), ("class",), (EMPTY_NAME,)]
    by_table = {t["table"]: t for t in report["tables"]}
    assert any("column '' renamed to '(empty name)'" in w for w in by_table["class"]["warnings"])
    assert by_table[""]["target_table"] == EMPTY_NAME
    schema = _column_schema(result, asset_keys(_catalog_of(db).tables)["class"])
    assert [c.name for c in schema.columns] == ["id", "class", EMPTY_NAME]

    result, report = run_job(db, pg_dsn, tmp_path, job="consistency_check_job")
    assert result.success and report["status"] == "success", report["reasons"]
    evaluated = {named(e.asset_key) for e in result.get_asset_check_evaluations()}
    assert evaluated == keys - {"migration_run", "migration_report"}


def test_columns_named_like_system_columns_are_renamed_and_migrated(
    tmp_path: Path, pg_dsn: str
) -> None:
    """SQLite takes ctid, xmin... as column names; PostgreSQL keeps them for its system
    columns. Each is renamed as a long name is (reported), and everything that names the
    column follows: key, foreign key, index, view, checks, re-verification."""
    db = tmp_path / "system.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(
            "CREATE TABLE versions (xmin INTEGER PRIMARY KEY, xmax INTEGER);"
            "CREATE TABLE rows (ctid TEXT PRIMARY KEY, cmin INTEGER NOT NULL, cmax REAL, "
            "tableoid INTEGER REFERENCES versions(xmin), XMin TEXT);"
            "CREATE INDEX rows_cmin ON rows (cmin);"
            "CREATE VIEW newest AS SELECT ctid, tableoid FROM rows WHERE cmin > 1;"
            "INSERT INTO versions VALUES (1, 10), (2, 20);"
            "INSERT INTO rows VALUES ('(0,1)', 1, 0.5, 1, 'a'), ('(0,2)', 2, NULL, 2, 'b');"
        )

    result, report = run_job(db, pg_dsn, tmp_path)

    assert result.success and report["status"] == "success", report["reasons"]
    renamed = {name: pg_column(name) for name in SYSTEM_COLUMNS}
    assert all(
        new.startswith(f"{old}_") and len(new) == len(old) + 9 for old, new in renamed.items()
    )
    assert fetch(pg_dsn, sql.SQL("SELECT {}, {}, {}, {}, {} FROM rows ORDER BY 1").format(
        *(sql.Identifier(renamed[c]) for c in ("ctid", "cmin", "cmax", "tableoid")),
        sql.Identifier("XMin"),
    )) == [("(0,1)", 1, 0.5, 1, "a"), ("(0,2)", 2, None, 2, "b")]  # fmt: skip
    assert fetch(pg_dsn, "SELECT * FROM newest") == [("(0,2)", 2)]
    warnings = {t["table"]: t["warnings"] for t in report["tables"]}
    assert f"column 'xmin' renamed to '{renamed['xmin']}' (PostgreSQL keeps the name for a " \
        "system column)" in warnings["versions"]  # fmt: skip
    assert sum("renamed" in w for w in warnings["rows"]) == 4  # not XMin: another name
    assert fetch(
        pg_dsn,
        "SELECT count(*) FROM pg_constraint WHERE conrelid = 'rows'::regclass "
        "AND contype IN ('p', 'f')",
    ) == [(2,)]
    verified, again = run_job(db, pg_dsn, tmp_path, job="consistency_check_job")
    assert verified.success and again["status"] == "success", again["reasons"]
