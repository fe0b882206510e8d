"""`make demo-merge`: the ConsoleAI application's own schema (the fixture the legacy data is
merged into), its post-cutover rows, and the demo end to end through the real CLI."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from consoleai_etl.core.source.catalog import Catalog, introspect
from consoleai_etl.demo import merge_demo
from consoleai_etl.demo.app_schema import (
    APP_TABLES,
    POST_CUTOVER_FIRST_ID,
    POST_CUTOVER_ROWS,
    create_app_schema,
    insert_post_cutover_rows,
)
from consoleai_etl.demo.sample import generate
from consoleai_etl_tests.helpers import dagster_env, fetch

SCHEMA = "consoleai_app"

# Every constraint of a schema: (table, kind p/u/f, columns, referenced table, its columns).
CONSTRAINTS = """
SELECT cl.relname, c.contype::text,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
       ref.relname,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum)
FROM pg_constraint c
JOIN pg_class cl ON cl.oid = c.conrelid
JOIN pg_namespace n ON n.oid = cl.relnamespace
LEFT JOIN pg_class ref ON ref.oid = c.confrelid
WHERE n.nspname = %s AND c.contype IN ('p', 'u', 'f')
"""


@pytest.fixture
def app(pg_dsn: str) -> Iterator[psycopg.Connection]:
    """A connection to a fresh database holding the application schema, nothing else."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        create_app_schema(conn, SCHEMA)
        yield conn


def legacy_catalog(path: Path) -> Catalog:
    with sqlite3.connect(path) as conn:
        return introspect(conn)


def expected_constraints(catalog: Catalog) -> set[tuple]:
    """The legacy keys, UNIQUE constraints and foreign keys, in the shape of CONSTRAINTS."""
    found: set[tuple] = set()
    for table in catalog.tables:
        found.add((table.name, "p", table.primary_key, None, None))
        found |= {
            (table.name, "u", i.columns, None, None) for i in table.indexes if i.origin == "u"
        }
        found |= {
            (table.name, "f", fk.columns, fk.ref_table, fk.ref_columns) for fk in table.foreign_keys
        }
    return found


def load_legacy_rows(sqlite_path: Path, conn: psycopg.Connection) -> dict[str, int]:
    """Insert every row of the legacy file into the application's tables with plain INSERTs:
    values as text (PostgreSQL parses each by its column's type: 1 as boolean, ISO text as
    timestamptz, JSON text as jsonb), BLOBs as bytes. Returns {table: rows}."""
    counts = {}
    with sqlite3.connect(sqlite_path) as src, conn.transaction():
        for table in APP_TABLES:
            cursor = src.execute(f"SELECT * FROM {table}")
            columns = [d[0] for d in cursor.description]
            insert = sql.SQL("INSERT INTO {}.{} ({}) VALUES ({})").format(
                sql.Identifier(SCHEMA),
                sql.Identifier(table),
                sql.SQL(", ").join(map(sql.Identifier, columns)),
                sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            )
            rows = [[v if v is None or isinstance(v, bytes) else str(v) for v in r] for r in cursor]
            with conn.cursor() as pg:
                pg.executemany(insert, rows)
            counts[table] = len(rows)
    return counts


def test_app_schema_creates_idempotently_with_the_legacy_names_and_keys(
    app: psycopg.Connection, sample_db: Path
) -> None:
    assert create_app_schema(app, SCHEMA) == 0  # the fixture already created all nine
    catalog = legacy_catalog(sample_db)

    assert sorted(t.name for t in catalog.tables) == sorted(APP_TABLES)
    columns = app.execute(
        "SELECT table_name, column_name, is_nullable, data_type FROM information_schema.columns "
        "WHERE table_schema = %s",
        (SCHEMA,),
    ).fetchall()
    assert {(t, c) for t, c, _, _ in columns} == {
        (t.name, c.name) for t in catalog.tables for c in t.columns
    }
    not_null = {(t, c) for t, c, nullable, _ in columns if nullable == "NO"}
    assert {(t.name, c.name) for t in catalog.tables for c in t.columns if c.not_null} <= not_null
    constraints = {
        (t, kind, tuple(cols), ref, tuple(ref_cols) if ref_cols else None)
        for t, kind, cols, ref, ref_cols in app.execute(CONSTRAINTS, (SCHEMA,))
    }
    assert constraints == expected_constraints(catalog)
    indexes = {name for (name,) in app.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (SCHEMA,))}  # fmt: skip
    assert {i.name for t in catalog.tables for i in t.indexes if i.origin == "c"} <= indexes
    # The application's own types, not the ones this tool would plan (timestamp, bigint):
    legacy_types = {(t.name, c.name): c.declared_type for t in catalog.tables for c in t.columns}
    assert {d for t, c, _, d in columns if legacy_types[t, c] == "DATETIME"} == {
        "timestamp with time zone"
    }
    identities = app.execute(
        "SELECT table_name FROM information_schema.columns "
        "WHERE table_schema = %s AND column_name = 'id' AND is_identity = 'YES'",
        (SCHEMA,),
    ).fetchall()
    assert {t for (t,) in identities} == {
        t.name for t in catalog.tables if t.primary_key == ("id",)
    }


def test_every_legacy_value_fits_the_app_schema_and_post_cutover_rows_go_in_once(
    app: psycopg.Connection, sample_db: Path
) -> None:
    counts = load_legacy_rows(sample_db, app)

    for table, rows in counts.items():
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(SCHEMA), sql.Identifier(table)
        )
        assert app.execute(query).fetchone() == (rows,)
    numeric = app.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s AND data_type = 'numeric'",
        (SCHEMA,),
    ).fetchall()
    assert numeric  # credit_balance, cost_usd, unit_price, hourly_cost
    catalog = legacy_catalog(sample_db)
    with sqlite3.connect(sample_db) as src:
        for table, column in numeric:
            [key] = catalog.table(table).primary_key
            assert_same_numbers(src, app, table, column, key)

    post_cutover = sum(len(rows) for _, rows in POST_CUTOVER_ROWS.values())
    assert insert_post_cutover_rows(app, SCHEMA) == post_cutover
    assert insert_post_cutover_rows(app, SCHEMA) == 0
    assert app.execute(f"SELECT count(*) FROM {SCHEMA}.users").fetchone() == (
        counts["users"] + len(POST_CUTOVER_ROWS["users"][1]),
    )


def assert_same_numbers(
    src: sqlite3.Connection, app: psycopg.Connection, table: str, column: str, key: str
) -> None:
    """The legacy values of a numeric column are in PostgreSQL unchanged: numeric(p,s) would
    round a value with more decimals than its scale silently."""
    legacy = src.execute(f"SELECT {key}, {column} FROM {table}").fetchall()
    query = sql.SQL("SELECT {}::text, {} FROM {}.{}").format(
        sql.Identifier(key), sql.Identifier(column), sql.Identifier(SCHEMA), sql.Identifier(table)
    )
    stored = dict(app.execute(query).fetchall())
    assert {str(k): None if v is None else Decimal(str(v)) for k, v in legacy} == stored


def test_post_cutover_rows_are_inserted_once_into_the_empty_app_schema(
    app: psycopg.Connection,
) -> None:
    first = insert_post_cutover_rows(app, SCHEMA)
    second = insert_post_cutover_rows(app, SCHEMA)

    assert (first, second) == (sum(len(rows) for _, rows in POST_CUTOVER_ROWS.values()), 0)
    for table, (_, rows) in POST_CUTOVER_ROWS.items():
        ids = app.execute(f"SELECT id FROM {SCHEMA}.{table} ORDER BY id").fetchall()
        assert ids == [(row[0],) for row in rows]
        assert all(id_ >= POST_CUTOVER_FIRST_ID for (id_,) in ids)


def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: Path, dsn: str) -> Path:
    """The environment `make demo-merge` runs in (its own DAGSTER_HOME, reports under
    tmp_path, the default target schema); returns the report directory."""
    env = dagster_env(tmp_path, db, dsn)
    for name in (
        "DAGSTER_HOME",
        "CONSOLEAI_SQLITE_PATH",
        "CONSOLEAI_PG_DSN",
        "CONSOLEAI_REPORT_DIR",
    ):
        monkeypatch.setenv(name, env[name])
    for name in ("CONSOLEAI_TARGET_SCHEMA", "CONSOLEAI_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return Path(env["CONSOLEAI_REPORT_DIR"])


def test_demo_merge_without_a_report_says_so_and_fails(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """The run stops in preflight (no source file): the previous run's latest.json is not
    taken for this run's report, and the application schema holds only its own rows."""
    reports = demo_env(monkeypatch, tmp_path, tmp_path / "missing.sqlite", pg_dsn)
    reports.mkdir()
    (reports / "latest.json").write_text(json.dumps({"run_id": "an-earlier-run", "tables": []}))

    status = merge_demo.main()

    assert status != 0
    out = capsys.readouterr().out
    assert f"application schema {SCHEMA}: created {len(APP_TABLES)} tables" in out
    assert f"no report at {reports / 'latest.json'}" in out
    assert fetch(pg_dsn, f"SELECT count(*) FROM {SCHEMA}.users") == [
        (len(POST_CUTOVER_ROWS["users"][1]),)
    ]


def test_demo_merge_reports_an_unreachable_target_in_one_line(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    demo_env(
        monkeypatch,
        tmp_path,
        tmp_path / "missing.sqlite",
        make_conninfo(pg_dsn, dbname="no_such_database"),
    )

    assert merge_demo.main() == 1

    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot prepare the application schema {SCHEMA}: ")
    assert (
        'database "no_such_database" does not exist' in err
        and "\n" not in err
        and "Traceback" not in err
    )


def counts(table: dict) -> dict:
    """A table's merge counts (``sequences_moved``, when present, is checked apart)."""
    return {k: v for k, v in table["merge"].items() if k != "sequences_moved"}


def test_demo_merge_merges_the_sample_then_finds_nothing_to_change(
    tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    db = tmp_path / "data" / "consoleai_legacy.sqlite"
    legacy = generate(db, scale=0.02)
    reports = demo_env(monkeypatch, tmp_path, db, pg_dsn)
    extra = {table: len(rows) for table, (_, rows) in POST_CUTOVER_ROWS.items()}

    assert merge_demo.main() == 0
    first = json.loads((reports / "latest.json").read_text())
    assert first["mode"] == "merge" and first["target_schema"] == SCHEMA
    assert {t["table"]: counts(t) for t in first["tables"]} == {
        table: {
            "inserted": rows,
            "updated": 0,
            "unchanged": 0,
            "extra_in_target": extra.get(table, 0),
            "kept_application_changes": 0,
            "conflicts": 0,
        }
        for table, rows in legacy.items()
    }
    assert merge_demo.NO_CHANGES not in capsys.readouterr().out

    assert merge_demo.main() == 0
    second = json.loads((reports / "latest.json").read_text())
    assert second["run_id"] != first["run_id"]
    assert {t["table"]: counts(t) for t in second["tables"]} == {
        table: {
            "inserted": 0,
            "updated": 0,
            "unchanged": rows,
            "extra_in_target": extra.get(table, 0),
            "kept_application_changes": 0,
            "conflicts": 0,
        }
        for table, rows in legacy.items()
    }
    out = capsys.readouterr().out
    assert "already present; 0 post-cutover rows inserted" in out
    assert merge_demo.NO_CHANGES in out

    # The application keeps working: its next user gets an id past every merged or own key.
    [(new_id,)] = fetch(
        pg_dsn,
        f"INSERT INTO {SCHEMA}.users (email, display_name) VALUES ('new@app.example', 'New') "
        "RETURNING id",
    )
    assert new_id > max(row[0] for row in POST_CUTOVER_ROWS["users"][1])


def test_merge_lines_say_no_changes_only_when_every_table_was_merged_unchanged() -> None:
    def table(name: str, inserted: int | None) -> dict:
        counts = {"inserted": inserted, "updated": 0, "unchanged": 1_500, "extra_in_target": 3,
                  "kept_application_changes": 4, "conflicts": 0}  # fmt: skip
        return {"table": name, "merge": None if inserted is None else counts}

    def lines(*tables: dict) -> list[str]:
        return merge_demo.merge_lines({"target_schema": SCHEMA, "tables": list(tables)})

    unchanged = lines(table("users", 0), table("roles", 0))
    assert unchanged[-1] == merge_demo.NO_CHANGES
    assert unchanged[2].split() == ["users", "0", "0", "1,500", "3", "4", "0"]
    assert lines(table("users", 2), table("roles", 0))[-1] == "changed: 2 rows inserted or updated"
    partial = lines(table("users", 0), table("roles", None))
    assert partial[-1].split() == ["roles", "not", "merged"]
    assert merge_demo.NO_CHANGES not in partial
