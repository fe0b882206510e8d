"""Introspection of a SQLite database into a plain catalog (tables, keys, indexes, views).

The catalog holds only what the schema declares; what the rows actually store is measured
later by ``profile`` inside each table's load, so that building the Dagster graph stays cheap.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    name: str
    declared_type: str
    not_null: bool
    default_sql: str | None
    pk_position: int  # 0 when the column is not part of the primary key


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]  # resolved to the parent's PK when the DDL omits them
    on_delete: str
    on_update: str


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    descending: tuple[bool, ...]
    unique: bool
    origin: str  # "c" CREATE INDEX, "u" UNIQUE constraint, "pk" primary key
    unsupported: str | None = None  # why it cannot be recreated (expression, partial, collation)


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    indexes: tuple[Index, ...]
    without_rowid: bool
    sql: str

    @property
    def rowid_alias(self) -> str | None:
        """The ``INTEGER PRIMARY KEY`` column that aliases SQLite's rowid, if any."""
        if self.without_rowid or len(self.primary_key) != 1:
            return None
        column = self.column(self.primary_key[0])
        return column.name if column.declared_type.strip().upper() == "INTEGER" else None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class SchemaObject:
    """A view, trigger or virtual table: not loaded as data, listed in the report."""

    kind: str
    name: str
    sql: str


@dataclass(frozen=True)
class Catalog:
    tables: tuple[Table, ...]
    others: tuple[SchemaObject, ...] = field(default=())

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


def sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pragma(conn: sqlite3.Connection, pragma: str, name: str) -> list[tuple]:
    return conn.execute(f"PRAGMA {pragma}({sqlite_quote(name)})").fetchall()


def _columns(conn: sqlite3.Connection, table: str) -> tuple[Column, ...]:
    # table_xinfo also lists generated columns; hidden=0 are ordinary stored columns.
    return tuple(
        Column(
            name=name,
            declared_type=declared or "",
            not_null=bool(notnull),
            default_sql=default,
            pk_position=pk,
        )
        for _cid, name, declared, notnull, default, pk, hidden in _pragma(
            conn, "table_xinfo", table
        )
        if hidden == 0
    )


def _foreign_keys(
    conn: sqlite3.Connection, table: str, primary_keys: dict[str, tuple[str, ...]]
) -> tuple[ForeignKey, ...]:
    grouped: dict[int, list[tuple]] = {}
    for row in _pragma(conn, "foreign_key_list", table):
        grouped.setdefault(row[0], []).append(row)
    fks = []
    for rows in grouped.values():
        rows.sort(key=lambda r: r[1])
        ref_table = rows[0][2]
        ref_columns = tuple(r[4] for r in rows)
        if any(c is None for c in ref_columns):
            ref_columns = primary_keys.get(ref_table, ())
        fks.append(
            ForeignKey(
                columns=tuple(r[3] for r in rows),
                ref_table=ref_table,
                ref_columns=ref_columns,
                on_update=rows[0][5],
                on_delete=rows[0][6],
            )
        )
    return tuple(fks)


def _indexes(conn: sqlite3.Connection, table: str) -> tuple[Index, ...]:
    indexes = []
    for _seq, name, unique, origin, partial in _pragma(conn, "index_list", table):
        keys = [row for row in _pragma(conn, "index_xinfo", name) if row[5] == 1]
        unsupported = None
        if partial:
            unsupported = "partial index (WHERE clause)"
        elif any(row[1] == -2 for row in keys):
            unsupported = "expression index"
        elif any(row[4] not in ("BINARY", None) for row in keys):
            unsupported = "non-binary collation " + ", ".join(sorted({str(r[4]) for r in keys}))
        indexes.append(
            Index(
                name=name,
                columns=tuple(row[2] or "" for row in keys),
                descending=tuple(bool(row[3]) for row in keys),
                unique=bool(unique),
                origin=origin,
                unsupported=unsupported,
            )
        )
    return tuple(indexes)


def _is_without_rowid(conn: sqlite3.Connection, table: str) -> bool:
    try:
        conn.execute(f"SELECT rowid FROM {sqlite_quote(table)} LIMIT 0")
    except sqlite3.OperationalError:
        return True
    return False


def introspect(conn: sqlite3.Connection) -> Catalog:
    """Read the schema of every user table of ``conn`` (no row data is read)."""
    entries = conn.execute(
        "SELECT type, name, sql FROM sqlite_master "
        "WHERE type IN ('table', 'view', 'trigger') AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    virtual = {name for kind, name, sql in entries if kind == "table" and _is_virtual(sql)}
    # FTS and other virtual tables keep their data in shadow tables named "<vtable>_<suffix>".
    shadow = {
        name
        for kind, name, _ in entries
        if kind == "table" and any(name.startswith(v + "_") for v in virtual)
    }
    others = [
        SchemaObject(kind if name not in virtual else "virtual table", name, sql or "")
        for kind, name, sql in entries
        if kind != "table" or name in virtual
    ]
    others += [SchemaObject("shadow table", name, "") for name in sorted(shadow)]
    table_names = [
        name for kind, name, _ in entries if kind == "table" and name not in virtual | shadow
    ]
    columns = {name: _columns(conn, name) for name in table_names}
    primary_keys = {
        name: tuple(c.name for c in sorted(cols, key=lambda c: c.pk_position) if c.pk_position)
        for name, cols in columns.items()
    }
    sql_by_name = {name: sql or "" for _, name, sql in entries}
    tables = tuple(
        Table(
            name=name,
            columns=columns[name],
            primary_key=primary_keys[name],
            foreign_keys=_foreign_keys(conn, name, primary_keys),
            indexes=_indexes(conn, name),
            without_rowid=_is_without_rowid(conn, name),
            sql=sql_by_name[name],
        )
        for name in table_names
    )
    return Catalog(tables=tables, others=tuple(others))


def _is_virtual(sql: str | None) -> bool:
    return bool(sql) and sql.lstrip().upper().startswith("CREATE VIRTUAL TABLE")
