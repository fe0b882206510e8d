"""Introspection (core/catalog.py) and load order (core/order.py) on real SQLite schemas."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from consoleai_etl.core.plan.order import load_order
from consoleai_etl.core.source.catalog import Catalog, ForeignKey, Index, introspect
from consoleai_etl.core.source.connection import open_source
from consoleai_etl.demo.sample import TABLE_ORDER


def catalog_of(ddl: str) -> Catalog:
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(ddl)
        return introspect(conn)
    finally:
        conn.close()


@pytest.fixture(scope="module")
def sample_catalog(sample_db: Path) -> Catalog:
    conn = open_source(sample_db)
    try:
        return introspect(conn)
    finally:
        conn.close()


def index_by_name(indexes: tuple[Index, ...]) -> dict[str, Index]:
    return {index.name: index for index in indexes}


# --- the sample database ----------------------------------------------------------------------


def test_sample_tables_and_view(sample_catalog: Catalog) -> None:
    assert sorted(t.name for t in sample_catalog.tables) == sorted(TABLE_ORDER)
    assert [(o.kind, o.name) for o in sample_catalog.others] == [("view", "active_users")]
    assert "SELECT id, email FROM users" in sample_catalog.others[0].sql


def test_sample_columns_types_and_defaults(sample_catalog: Catalog) -> None:
    users = sample_catalog.table("users")
    assert [c.name for c in users.columns] == [
        "id",
        "email",
        "display_name",
        "is_active",
        "is_admin",
        "credit_balance",
        "settings",
        "avatar",
        "created_at",
        "last_login_at",
    ]
    assert users.column("credit_balance").declared_type == "NUMERIC(12, 2)"
    assert users.column("email").declared_type == "VARCHAR(255)"
    assert users.column("email").not_null
    assert not users.column("last_login_at").not_null
    assert users.column("is_active").default_sql == "1"
    assert users.column("settings").default_sql is None
    roles = sample_catalog.table("roles")
    assert roles.column("created_at").default_sql == "CURRENT_TIMESTAMP"
    assert users.primary_key == ("id",) and users.column("id").pk_position == 1
    assert users.rowid_alias == "id"
    assert not users.without_rowid
    assert users.sql.startswith("CREATE TABLE users")


def test_sample_composite_primary_key_without_rowid(sample_catalog: Catalog) -> None:
    user_roles = sample_catalog.table("user_roles")
    assert user_roles.primary_key == ("user_id", "role_id")
    assert user_roles.without_rowid
    assert user_roles.rowid_alias is None
    pk = [i for i in user_roles.indexes if i.origin == "pk"]
    assert len(pk) == 1 and pk[0].columns == ("user_id", "role_id") and pk[0].unique


def test_sample_text_primary_key_is_not_a_rowid_alias(sample_catalog: Catalog) -> None:
    items = sample_catalog.table("inventory_items")
    assert items.primary_key == ("sku",)
    assert items.rowid_alias is None
    (pk,) = [i for i in items.indexes if i.origin == "pk"]
    assert pk.columns == ("sku",)


def test_sample_foreign_keys(sample_catalog: Catalog) -> None:
    fks = set(sample_catalog.table("user_roles").foreign_keys)
    assert fks == {
        ForeignKey(("user_id",), "users", ("id",), "CASCADE", "NO ACTION"),
        ForeignKey(("role_id",), "roles", ("id",), "NO ACTION", "NO ACTION"),
        ForeignKey(("granted_by",), "users", ("id",), "NO ACTION", "NO ACTION"),
    }
    assert sample_catalog.table("roles").foreign_keys == ()


def test_sample_indexes(sample_catalog: Catalog) -> None:
    runs = index_by_name(sample_catalog.table("workflow_runs").indexes)
    assert runs == {
        "idx_workflow_runs_workflow": Index(
            "idx_workflow_runs_workflow",
            ("workflow_id", "started_at"),
            (False, False),
            unique=False,
            origin="c",
        )
    }
    workflows = sample_catalog.table("workflows").indexes
    (unique,) = [i for i in workflows if i.origin == "u"]
    assert unique.columns == ("owner_id", "name") and unique.unique
    (email,) = [i for i in sample_catalog.table("users").indexes if i.origin == "u"]
    assert email.columns == ("email",)
    # A rowid-alias primary key has no index of its own.
    assert not [i for i in sample_catalog.table("users").indexes if i.origin == "pk"]


# --- hand-built schemas -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ("id INTEGER PRIMARY KEY, v TEXT", "id"),
        ("id integer primary key autoincrement, v TEXT", "id"),
        ("id INTEGER, v TEXT, PRIMARY KEY (id)", "id"),
        ("id INT PRIMARY KEY, v TEXT", None),
        ("id BIGINT PRIMARY KEY, v TEXT", None),
        ("id TEXT PRIMARY KEY, v TEXT", None),
        ("a INTEGER, b INTEGER, PRIMARY KEY (a, b)", None),
        ("v TEXT", None),
    ],
)
def test_rowid_alias_detection(columns: str, expected: str | None) -> None:
    table = catalog_of(f"CREATE TABLE t ({columns});").table("t")
    assert table.rowid_alias == expected


def test_integer_primary_key_without_rowid_is_not_an_alias() -> None:
    table = catalog_of("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID;").table("t")
    assert table.without_rowid
    assert table.primary_key == ("id",)
    assert table.rowid_alias is None


def test_untyped_and_generated_columns() -> None:
    table = catalog_of(
        "CREATE TABLE t (a, b INTEGER NOT NULL DEFAULT (1 + 1), "
        "c INTEGER GENERATED ALWAYS AS (b * 2) VIRTUAL);"
    ).table("t")
    assert [c.name for c in table.columns] == ["a", "b", "c"]  # c's values are SQLite's
    assert table.column("c").generated == "VIRTUAL"
    assert table.column("c").expression == "b * 2"
    assert table.column("a").declared_type == ""
    assert table.column("b").default_sql == "1 + 1"
    assert table.primary_key == ()


def test_foreign_key_without_parent_columns_resolves_to_parent_pk() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE parent (id INTEGER PRIMARY KEY);
        CREATE TABLE pair (a TEXT, b INTEGER, PRIMARY KEY (a, b));
        CREATE TABLE child (
            id INTEGER PRIMARY KEY,
            parent_id INTEGER REFERENCES parent ON DELETE SET NULL ON UPDATE CASCADE,
            x TEXT, y INTEGER,
            FOREIGN KEY (x, y) REFERENCES pair
        );
        """
    )
    fks = {fk.ref_table: fk for fk in catalog.table("child").foreign_keys}
    assert fks["parent"] == ForeignKey(("parent_id",), "parent", ("id",), "SET NULL", "CASCADE")
    assert fks["pair"].columns == ("x", "y")
    assert fks["pair"].ref_columns == ("a", "b")


def test_composite_foreign_key_keeps_column_order() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE pair (a TEXT, b INTEGER, PRIMARY KEY (a, b));
        CREATE TABLE child (y INTEGER, x TEXT, FOREIGN KEY (x, y) REFERENCES pair (a, b));
        """
    )
    (fk,) = catalog.table("child").foreign_keys
    assert fk.columns == ("x", "y") and fk.ref_columns == ("a", "b")


def test_indexes_origin_order_and_unsupported_kinds() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT UNIQUE, c TEXT);
        CREATE INDEX i_desc ON t (a DESC, c);
        CREATE UNIQUE INDEX u_c ON t (c);
        CREATE INDEX i_expr ON t (lower(c));
        CREATE INDEX i_partial ON t (a) WHERE a > 0;
        CREATE INDEX i_nocase ON t (c COLLATE NOCASE);
        """
    )
    indexes = index_by_name(catalog.table("t").indexes)
    assert indexes["i_desc"] == Index("i_desc", ("a", "c"), (True, False), False, "c", None)
    assert indexes["u_c"] == Index("u_c", ("c",), (False,), True, "c", None)
    assert indexes["i_expr"].unsupported == "expression index"
    assert indexes["i_partial"].unsupported == "partial index (WHERE clause)"
    assert indexes["i_nocase"].unsupported is not None
    assert "NOCASE" in indexes["i_nocase"].unsupported
    (auto,) = [i for i in indexes.values() if i.origin == "u"]
    assert auto.columns == ("b",) and auto.unique and auto.unsupported is None
    assert len(indexes) == 6


def test_views_and_triggers_are_listed_not_loaded() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
        CREATE TABLE log (msg TEXT);
        CREATE VIEW t_view AS SELECT v FROM t;
        CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN INSERT INTO log VALUES (new.v); END;
        """
    )
    assert [t.name for t in catalog.tables] == ["log", "t"]
    kinds = {o.name: o.kind for o in catalog.others}
    assert kinds == {"t_view": "view", "t_audit": "trigger"}
    assert all(o.sql.startswith("CREATE") for o in catalog.others)


def test_fts5_virtual_table_and_shadow_tables_are_not_data_tables() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
        CREATE VIRTUAL TABLE docs USING fts5(title, body);
        INSERT INTO docs VALUES ('a', 'b');
        """
    )
    assert [t.name for t in catalog.tables] == ["notes"]
    others = {o.name: o.kind for o in catalog.others}
    assert others.pop("docs") == "virtual table"
    assert set(others) == {"docs_config", "docs_content", "docs_data", "docs_docsize", "docs_idx"}
    assert set(others.values()) == {"shadow table"}


def test_quoted_identifiers_with_spaces_and_quotes() -> None:
    catalog = catalog_of(
        'CREATE TABLE "odd ""name""" ("col one" INTEGER PRIMARY KEY, "x-y" TEXT);'
        'CREATE INDEX "idx ""q""" ON "odd ""name""" ("x-y" DESC);'
    )
    table = catalog.table('odd "name"')
    assert [c.name for c in table.columns] == ["col one", "x-y"]
    assert table.rowid_alias == "col one"
    assert table.indexes == (Index('idx "q"', ("x-y",), (True,), False, "c"),)


def test_introspection_reads_no_rows_and_ignores_sqlite_internal_tables() -> None:
    catalog = catalog_of(
        "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT); INSERT INTO t DEFAULT VALUES;"
    )
    assert [t.name for t in catalog.tables] == ["t"]  # sqlite_sequence is left out
    assert catalog.others == ()


# --- load order -------------------------------------------------------------------------------


def test_sample_load_order_puts_parents_first(sample_catalog: Catalog) -> None:
    order = load_order(sample_catalog)
    assert sorted(order.tables) == sorted(TABLE_ORDER)
    position = {name: i for i, name in enumerate(order.tables)}
    for table in sample_catalog.tables:
        for fk in table.foreign_keys:
            assert position[fk.ref_table] < position[table.name], (table.name, fk.ref_table)
    assert order.upstream["user_roles"] == ("roles", "users")
    assert order.upstream["roles"] == ()
    assert order.deferred == ()


def test_self_reference_is_ignored() -> None:
    catalog = catalog_of(
        """
        CREATE TABLE employees (id INTEGER PRIMARY KEY, manager_id INTEGER REFERENCES employees);
        CREATE TABLE teams (id INTEGER PRIMARY KEY, lead_id INTEGER REFERENCES employees(id));
        """
    )
    order = load_order(catalog)
    assert order.tables == ("employees", "teams")
    assert order.upstream == {"employees": (), "teams": ("employees",)}
    assert order.deferred == ()


CYCLE = """
CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id));
CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));
CREATE TABLE c (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id));
"""


def test_two_table_cycle_is_broken_deterministically() -> None:
    order = load_order(catalog_of(CYCLE))
    assert order.tables == ("a", "b", "c")
    assert order.upstream == {"a": (), "b": ("a",), "c": ("b",)}
    assert order.deferred == (("a", ForeignKey(("b_id",), "b", ("id",), "NO ACTION", "NO ACTION")),)
    # The same schema created in another order gives the same answer.
    reordered = "\n".join(reversed(CYCLE.strip().splitlines()))
    assert load_order(catalog_of(reordered)) == order


def test_a_table_named_like_a_shadow_table_is_still_data() -> None:
    catalog = catalog_of(
        "CREATE VIRTUAL TABLE docs USING fts5(body);"
        "CREATE TABLE docs_archive (id INTEGER PRIMARY KEY, body TEXT);"
    )
    assert [t.name for t in catalog.tables] == ["docs_archive"]
    assert "docs_archive" not in {o.name for o in catalog.others}


def test_integer_primary_key_desc_is_not_a_rowid_alias() -> None:
    # SQLite's documented quirk: DESC makes it an ordinary indexed column, not the rowid.
    [table] = catalog_of("CREATE TABLE d (x INTEGER PRIMARY KEY DESC, y)").tables
    assert table.primary_key == ("x",)
    assert table.rowid_alias is None


def test_a_table_that_only_depends_on_a_cycle_still_waits_for_its_parent() -> None:
    catalog = catalog_of(
        "CREATE TABLE x (id INTEGER PRIMARY KEY, y_id INTEGER REFERENCES y(id));"
        "CREATE TABLE y (id INTEGER PRIMARY KEY, x_id INTEGER REFERENCES x(id));"
        "CREATE TABLE a (id INTEGER PRIMARY KEY, x_id INTEGER REFERENCES x(id));"
    )
    order = load_order(catalog)
    assert order.upstream["a"] == ("x",)
    assert order.tables.index("x") < order.tables.index("a")
    assert [(child, fk.ref_table) for child, fk in order.deferred] == [("x", "y")]
    assert order.cycles == (("x", "y"),)
    assert order.cycle("a") == ()


def test_cycles_are_the_tables_reaching_each_other_and_a_self_reference() -> None:
    order = load_order(
        catalog_of(
            CYCLE + "CREATE TABLE e (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES e(id));"
        )
    )
    assert order.cycles == (("e",), ("a", "b"))  # in load order
    assert order.cycle("b") == ("a", "b") and order.cycle("c") == ()
