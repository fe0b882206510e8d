"""The table assets' metadata in the keys Dagster's UI and catalog read: the PostgreSQL
table name, the row count and the column schema with its constraints, from a real run."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from dagster import AssetKey, TableColumnConstraints, TableConstraints, TableSchema

from consoleai_etl.core.target.naming import TargetName
from consoleai_etl.definitions import build_definitions
from consoleai_etl.defs.metadata import UNDECIDED_TYPE
from consoleai_etl_tests.helpers import fetch, named, run_job

SCHEMA = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name VARCHAR(3), x);
CREATE TABLE teams (org TEXT NOT NULL, code TEXT NOT NULL, PRIMARY KEY (org, code));
CREATE TABLE members (
    user_id INTEGER NOT NULL REFERENCES users(id),
    org TEXT NOT NULL,
    code TEXT NOT NULL,
    badge TEXT,
    PRIMARY KEY (user_id, org, code),
    FOREIGN KEY (org, code) REFERENCES teams(org, code)
);
CREATE UNIQUE INDEX members_badge ON members(badge);
CREATE UNIQUE INDEX members_user_badge ON members(user_id, badge);
INSERT INTO users VALUES (1, 'a@x', 'ann', 1), (2, 'b@x', 'bobby', 2.5);
INSERT INTO teams VALUES ('acme', 'ops'), ('acme', 'dev');
INSERT INTO members VALUES (1, 'acme', 'ops', 'b1'), (2, 'acme', 'dev', NULL),
                           (2, 'acme', 'ops', NULL);
"""


def constraints(schema: TableSchema) -> dict[str, TableColumnConstraints]:
    return {c.name: c.constraints for c in schema.columns}


def materialized(result, name: str) -> dict:
    [event] = [e for e in result.get_asset_materialization_events() if named(e.asset_key) == name]
    return event.materialization.metadata


def test_a_materialization_names_the_table_and_its_columns_constraints(
    tmp_path: Path, pg_dsn: str
) -> None:
    db = tmp_path / "src.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(SCHEMA)

    result, report = run_job(db, pg_dsn, tmp_path / "reports", target_schema="crm")

    assert result.success and report["status"] == "success", report["reasons"]
    users, members = materialized(result, "users"), materialized(result, "members")
    assert users["dagster/table_name"].value == "crm.users"
    assert members["dagster/table_name"].value == "crm.members"
    assert users["dagster/row_count"].value == 2 and members["dagster/row_count"].value == 3

    schema = users["dagster/column_schema"].value
    # name: 'bobby' widened its VARCHAR(3); x: untyped, typed by the values it stores
    assert [(c.name, c.type) for c in schema.columns] == [
        ("id", "bigint"), ("email", "text"), ("name", "text"), ("x", "double precision"),
    ]  # fmt: skip
    assert constraints(schema) == {
        "id": TableColumnConstraints(nullable=False, unique=True, other=["primary key"]),
        "email": TableColumnConstraints(nullable=False, unique=True),
        "name": TableColumnConstraints(nullable=True, unique=False),
        "x": TableColumnConstraints(nullable=True, unique=False),
    }
    assert schema.constraints == TableConstraints(other=[])
    assert "widened to text" in schema.columns[2].description

    schema = members["dagster/column_schema"].value
    assert constraints(schema) == {
        "user_id": TableColumnConstraints(
            nullable=False, unique=False, other=["foreign key -> users(id)"]
        ),
        "org": TableColumnConstraints(nullable=False, unique=False),
        "code": TableColumnConstraints(nullable=False, unique=False),
        "badge": TableColumnConstraints(nullable=True, unique=True),
    }
    assert schema.constraints == TableConstraints(
        other=[
            "primary key (user_id, org, code)",
            "unique (user_id, badge)",
            "foreign key (org, code) -> teams(org, code)",
        ]
    )
    # The metadata describes what PostgreSQL holds: the same keys, uniques and FKs.
    held = fetch(
        pg_dsn,
        "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'crm.members'::regclass ORDER BY contype, 2",
    )
    assert held == [
        ("f", "FOREIGN KEY (org, code) REFERENCES crm.teams(org, code)"),
        ("f", "FOREIGN KEY (user_id) REFERENCES crm.users(id)"),
        ("p", "PRIMARY KEY (user_id, org, code)"),
    ]
    unique = fetch(  # column numbers: user_id 1, badge 4
        pg_dsn,
        "SELECT indkey::text FROM pg_index WHERE indrelid = 'crm.members'::regclass "
        "AND indisunique AND NOT indisprimary ORDER BY 1",
    )
    assert unique == [("1 4",), ("4",)]


def test_before_any_run_an_asset_shows_the_schema_its_declarations_suggest(
    tmp_path: Path,
) -> None:
    db = tmp_path / "src.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.executescript(SCHEMA)

    users = AssetKey(["app", "legacy", "users"])
    target = TargetName("app", "legacy")
    metadata = (
        build_definitions(db, target=target).resolve_assets_def(users).specs_by_key[users].metadata
    )

    assert metadata["source_table"] == "users"
    assert "dagster/table_name" not in metadata  # the target schema is a run option
    schema = metadata["dagster/column_schema"]
    assert [(c.name, c.type) for c in schema.columns] == [
        ("id", "bigint"), ("email", "text"), ("name", "varchar(3)"), ("x", UNDECIDED_TYPE),
    ]  # fmt: skip
    assert constraints(schema)["id"] == TableColumnConstraints(
        nullable=False, unique=True, other=["primary key"]
    )
    assert constraints(schema)["email"] == TableColumnConstraints(nullable=False, unique=True)
